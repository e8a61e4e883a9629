//! The gRPC server of one executor: `process_single_data`, `process_data` (several upstream
//! requests merged into one), `endpoint_discovery`, `_status`, grpc.health.v1 and gRPC
//! reflection (a Python gateway lists our services through it before it talks to us).
//!
//! A request whose endpoint has no handler is answered with the request itself, documents
//! untouched and not even decoded. A handler's error or panic becomes a response with status
//! ERROR naming the executor; the server goes on serving.

use super::config::Instance;
use super::{DEFAULT_ENDPOINT, HandlerError, Request, schema};
use crate::document::DocumentArray;
use crate::proto::jina::{
    DataRequestListProto, DataRequestProto, EndpointsProto, JinaInfoProto,
    jina_data_request_rpc_server::{JinaDataRequestRpc, JinaDataRequestRpcServer},
    jina_discover_endpoints_rpc_server::{
        JinaDiscoverEndpointsRpc, JinaDiscoverEndpointsRpcServer,
    },
    jina_info_rpc_server::{JinaInfoRpc, JinaInfoRpcServer},
    jina_single_data_request_rpc_server::{
        JinaSingleDataRequestRpc, JinaSingleDataRequestRpcServer,
    },
};
use crate::request;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::{Response, Status};

/// The endpoint Python Jina answers dry runs on; every executor lists it.
pub const DRY_RUN_ENDPOINT: &str = "_jina_dry_run_";

/// One executor behind the Jina RPC services. Cheap to clone.
#[derive(Clone)]
pub struct ExecutorService {
    instance: Arc<Instance>,
}

impl ExecutorService {
    pub fn new(instance: Instance) -> Self {
        ExecutorService {
            instance: Arc::new(instance),
        }
    }

    pub fn name(&self) -> &str {
        &self.instance.name
    }

    /// Answers one request. Blocking: call it where blocking is allowed.
    pub fn handle(&self, mut req: DataRequestProto) -> DataRequestProto {
        let endpoint = request::endpoint(&req).to_string();
        let Some(handler) = self.instance.table.resolve(&endpoint).map(str::to_string) else {
            return req; // no handler: pass through unchanged
        };
        match request::docs(&req) {
            Ok(docs) => {
                let parameters = request::parameters(&req);
                self.run_handler(&mut req, &handler, &endpoint, docs, &parameters)
            }
            Err(e) => self.fail(&mut req, HandlerError::new("DecodeError", e.to_string())),
        }
        req
    }

    /// Merges several requests (the parents of a join) into one and answers it: documents are
    /// joined by id, parameters merged (later ones win), the first header is kept.
    pub fn handle_list(&self, requests: Vec<DataRequestProto>) -> DataRequestProto {
        let (mut merged, docs) = match request::merge(requests) {
            Ok(m) => m,
            Err((mut merged, e)) => {
                self.fail(&mut merged, HandlerError::new("DecodeError", e.to_string()));
                return merged;
            }
        };
        let parameters = request::parameters(&merged);
        let endpoint = request::endpoint(&merged).to_string();
        match self.instance.table.resolve(&endpoint).map(str::to_string) {
            Some(handler) => self.run_handler(&mut merged, &handler, &endpoint, docs, &parameters),
            None => request::set_docs(&mut merged, &docs),
        }
        merged
    }

    fn run_handler(
        &self,
        req: &mut DataRequestProto,
        handler: &str,
        endpoint: &str,
        mut docs: DocumentArray,
        parameters: &Map<String, Value>,
    ) {
        let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.instance.executor.call(
                handler,
                Request {
                    endpoint,
                    docs: &mut docs,
                    parameters,
                    metas: &self.instance.metas,
                },
            )
        }));
        let outcome = call.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "handler panicked".into());
            Err(HandlerError::new("Panic", message))
        });
        match outcome {
            Ok(Some(new_docs)) => request::set_docs(req, &new_docs),
            Ok(None) => request::set_docs(req, &docs),
            Err(e) => self.fail(req, e),
        }
    }

    fn fail(&self, req: &mut DataRequestProto, e: HandlerError) {
        tracing::warn!("{} failed: {}", request::endpoint(req), e);
        request::set_error(
            req,
            request::error_status(&e.name, &e.message, &self.instance.name),
        );
    }

    /// The endpoints this executor answers, with a schema for each.
    pub fn endpoints(&self) -> EndpointsProto {
        let mut endpoints = vec![DRY_RUN_ENDPOINT.to_string(), DEFAULT_ENDPOINT.to_string()];
        for e in self.instance.table.endpoints() {
            if !endpoints.iter().any(|x| x == e) {
                endpoints.push(e.to_string());
            }
        }
        let schemas: Map<String, Value> = endpoints
            .iter()
            .map(|e| (e.clone(), schema::endpoint_schema()))
            .collect();
        EndpointsProto {
            endpoints,
            write_endpoints: vec![],
            schemas: Some(request::json_to_struct(&schemas)),
        }
    }
}

/// Runs blocking work (a handler) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("executor task failed: {e}")))
}

#[tonic::async_trait]
impl JinaSingleDataRequestRpc for ExecutorService {
    async fn process_single_data(
        &self,
        req: tonic::Request<DataRequestProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        let req = req.into_inner();
        if self
            .instance
            .table
            .resolve(request::endpoint(&req))
            .is_none()
        {
            return Ok(Response::new(req));
        }
        let this = self.clone();
        Ok(Response::new(blocking(move || this.handle(req)).await?))
    }
}

#[tonic::async_trait]
impl JinaDataRequestRpc for ExecutorService {
    async fn process_data(
        &self,
        req: tonic::Request<DataRequestListProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        let list = req.into_inner().requests;
        let this = self.clone();
        Ok(Response::new(
            blocking(move || this.handle_list(list)).await?,
        ))
    }
}

#[tonic::async_trait]
impl JinaDiscoverEndpointsRpc for ExecutorService {
    async fn endpoint_discovery(
        &self,
        _: tonic::Request<()>,
    ) -> Result<Response<EndpointsProto>, Status> {
        Ok(Response::new(self.endpoints()))
    }
}

#[tonic::async_trait]
impl JinaInfoRpc for ExecutorService {
    async fn status(&self, _: tonic::Request<()>) -> Result<Response<JinaInfoProto>, Status> {
        Ok(Response::new(crate::grpc::jina_info()))
    }
}

/// How an executor serves: TLS, and the largest request it takes.
pub struct ServeSettings {
    pub tls: Option<crate::tls::ServerTls>,
    /// None: no limit (a Flow's own child: the gateway has checked every request).
    pub max_request_bytes: Option<usize>,
}

/// Serves `service` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight and returns.
pub async fn serve(
    service: ExecutorService,
    listener: TcpListener,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let limit = settings.max_request_bytes.unwrap_or(usize::MAX);
    let routes = tonic::service::Routes::new(crate::limited!(
        JinaSingleDataRequestRpcServer::new(service.clone()),
        limit
    ))
    .add_service(crate::limited!(
        JinaDataRequestRpcServer::new(service.clone()),
        limit
    ))
    .add_service(JinaDiscoverEndpointsRpcServer::new(service.clone()))
    .add_service(JinaInfoRpcServer::new(service));
    let options = crate::grpc::ServeOptions {
        tls: settings.tls,
        serving: None,
    };
    crate::grpc::serve(routes, listener, options, shutdown).await
}
