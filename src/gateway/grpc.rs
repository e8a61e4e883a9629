//! The gateway's gRPC face: JinaRPC.Call (a bidirectional stream; answers go back as they
//! complete), process_single_data, dry_run, endpoint_discovery, `_status`, health and reflection.

use super::router::Router;
use crate::proto::jina::{
    DataRequestProto, EndpointsProto, JinaInfoProto, StatusProto,
    jina_discover_endpoints_rpc_server::{
        JinaDiscoverEndpointsRpc, JinaDiscoverEndpointsRpcServer,
    },
    jina_gateway_dry_run_rpc_server::{JinaGatewayDryRunRpc, JinaGatewayDryRunRpcServer},
    jina_info_rpc_server::{JinaInfoRpc, JinaInfoRpcServer},
    jina_rpc_server::{JinaRpc, JinaRpcServer},
    jina_single_data_request_rpc_server::{
        JinaSingleDataRequestRpc, JinaSingleDataRequestRpcServer,
    },
};
use futures::{Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone)]
pub struct GrpcGateway {
    router: Arc<Router>,
    prefetch: usize,
}

impl GrpcGateway {
    pub fn new(router: Arc<Router>, prefetch: usize) -> Self {
        GrpcGateway {
            router,
            prefetch: prefetch.max(1),
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DataRequestProto, Status>> + Send>>;

#[tonic::async_trait]
impl JinaRpc for GrpcGateway {
    type CallStream = ResponseStream;

    async fn call(
        &self,
        req: Request<Streaming<DataRequestProto>>,
    ) -> Result<Response<Self::CallStream>, Status> {
        let router = self.router.clone();
        // At most `prefetch` requests of this stream are in flight: the next one is read from
        // the client only when one is answered.
        let answers = req
            .into_inner()
            .take_while(|r| futures::future::ready(r.is_ok()))
            .filter_map(|r| futures::future::ready(r.ok()))
            .map(move |r| {
                let router = router.clone();
                tokio::spawn(async move { router.route(r).await })
            })
            .buffer_unordered(self.prefetch)
            .map(|joined| {
                joined.map_err(|e| Status::internal(format!("gateway task failed: {e}")))
            });
        Ok(Response::new(Box::pin(answers)))
    }
}

#[tonic::async_trait]
impl JinaSingleDataRequestRpc for GrpcGateway {
    async fn process_single_data(
        &self,
        req: Request<DataRequestProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        Ok(Response::new(self.router.route(req.into_inner()).await))
    }
}

#[tonic::async_trait]
impl JinaGatewayDryRunRpc for GrpcGateway {
    async fn dry_run(&self, _: Request<()>) -> Result<Response<StatusProto>, Status> {
        Ok(Response::new(self.router.dry_run().await))
    }
}

#[tonic::async_trait]
impl JinaDiscoverEndpointsRpc for GrpcGateway {
    async fn endpoint_discovery(&self, _: Request<()>) -> Result<Response<EndpointsProto>, Status> {
        Ok(Response::new(self.router.endpoints().await))
    }
}

#[tonic::async_trait]
impl JinaInfoRpc for GrpcGateway {
    async fn status(&self, _: Request<()>) -> Result<Response<JinaInfoProto>, Status> {
        Ok(Response::new(crate::grpc::jina_info()))
    }
}

/// Serves the gRPC gateway on `listener` until `shutdown` resolves.
pub async fn serve(
    gateway: GrpcGateway,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let routes =
        tonic::service::Routes::new(crate::unlimited!(JinaRpcServer::new(gateway.clone())))
            .add_service(crate::unlimited!(JinaSingleDataRequestRpcServer::new(
                gateway.clone()
            )))
            .add_service(JinaGatewayDryRunRpcServer::new(gateway.clone()))
            .add_service(JinaDiscoverEndpointsRpcServer::new(gateway.clone()))
            .add_service(JinaInfoRpcServer::new(gateway));
    crate::grpc::serve(routes, listener, shutdown).await
}
