//! The gateway's gRPC face: JinaRPC.Call (a bidirectional stream; answers go back as they
//! complete), process_single_data, stream_doc (one document in, the documents a streaming
//! executor yields out, as they come), dry_run, endpoint_discovery, `_status`, health and
//! reflection.

use super::router::Routing;
use crate::proto::jina::{
    DataRequestProto, EndpointsProto, HeaderProto, JinaInfoProto, SingleDocumentRequestProto,
    StatusProto,
    jina_discover_endpoints_rpc_server::{
        JinaDiscoverEndpointsRpc, JinaDiscoverEndpointsRpcServer,
    },
    jina_gateway_dry_run_rpc_server::{JinaGatewayDryRunRpc, JinaGatewayDryRunRpcServer},
    jina_info_rpc_server::{JinaInfoRpc, JinaInfoRpcServer},
    jina_rpc_server::{JinaRpc, JinaRpcServer},
    jina_single_data_request_rpc_server::{
        JinaSingleDataRequestRpc, JinaSingleDataRequestRpcServer,
    },
    jina_single_document_request_rpc_server::{
        JinaSingleDocumentRequestRpc, JinaSingleDocumentRequestRpcServer,
    },
};
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone)]
pub(super) struct GrpcGateway {
    routing: Routing,
    prefetch: usize,
    max_request_bytes: usize,
    admission: crate::request::Admission,
}

impl GrpcGateway {
    pub(super) fn new(routing: Routing, settings: &super::Settings) -> Self {
        GrpcGateway {
            routing,
            prefetch: settings.prefetch.max(1),
            max_request_bytes: settings.max_request_bytes,
            admission: settings.admission.clone(),
        }
    }

    /// Holds room in the gateway's budget for `req` (its bytes as received, and as sent on to
    /// an executor): the room it took as it came off the wire (`arrived`, see
    /// [`crate::grpc::AdmitMessages`]), else waited for now; refuses a request over
    /// `max_request_docs` (counted at the top level: the gateway does not decode documents;
    /// executors count every depth) or one that could never fit.
    async fn admit(
        &self,
        req: &DataRequestProto,
        arrived: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        let over = |o: crate::request::OverLimit| Status::resource_exhausted(o.to_string());
        self.admission
            .check_docs(crate::request::doc_count(req))
            .map_err(over)?;
        let needed = 2 * prost::Message::encoded_len(req);
        self.admission
            .admit_more(arrived, needed)
            .await
            .map_err(over)
    }
}

/// The status a `Call` stream ends with after a message that could not be read: too large is
/// RESOURCE_EXHAUSTED, bytes that are no `DataRequestProto` INVALID_ARGUMENT ([`crate::grpc::Codec`]
/// says so); anything else (the stream broke off) is as the transport gave it.
fn stream_error(status: Status) -> Status {
    match status.code() {
        // tonic says OUT_OF_RANGE for a message over the limit.
        tonic::Code::OutOfRange => Status::resource_exhausted(format!(
            "a request on the Call stream is over the gateway's limit (max_request_bytes): {}",
            status.message()
        )),
        _ => status,
    }
}

#[tonic::async_trait]
impl JinaRpc for GrpcGateway {
    type CallStream = crate::grpc::ReplyStream<DataRequestProto>;

    async fn call(
        &self,
        req: Request<Streaming<DataRequestProto>>,
    ) -> Result<Response<Self::CallStream>, Status> {
        let routing = self.routing.clone();
        // The client's trace context, for every request of the stream.
        let metadata = Arc::new(req.metadata().clone());
        let arrived = crate::grpc::Admitted::of(req.extensions());
        // A message that cannot be read ends the stream: the requests before it are still
        // answered, then the stream ends with that message's error.
        let failed = Arc::new(std::sync::Mutex::new(None::<Status>));
        let set_failed = failed.clone();
        let requests = req.into_inner().scan((), move |_, item| {
            futures::future::ready(match item {
                Ok(r) => Some(r),
                Err(status) => {
                    *set_failed.lock().unwrap() = Some(stream_error(status));
                    None
                }
            })
        });
        // At most `prefetch` requests of this stream are in flight, and the next one is read
        // from the client only once the gateway's budget has room for it. One it refuses ends
        // the stream with that status, after the answers to those before it.
        let gateway = self.clone();
        let set_refused = failed.clone();
        let answers = requests
            .then(move |r| {
                let gateway = gateway.clone();
                let room = arrived.as_ref().and_then(|a| a.next());
                async move {
                    let room = gateway.admit(&r, room).await;
                    (r, room)
                }
            })
            .scan((), move |_, (r, room)| {
                futures::future::ready(match room {
                    Ok(room) => Some((r, room)),
                    Err(refused) => {
                        *set_refused.lock().unwrap() = Some(refused);
                        None
                    }
                })
            })
            .map(move |(r, room)| {
                let routing = routing.clone();
                let metadata = metadata.clone();
                tokio::spawn(async move {
                    // Each request of a long stream goes through the router of its moment.
                    let router = routing.current().await;
                    let adopt = |span: &tracing::Span| {
                        crate::telemetry::adopt_from_metadata(span, &metadata)
                    };
                    let answer = router.route_with(r, adopt).await;
                    drop(room);
                    answer
                })
            })
            .buffer_unordered(self.prefetch)
            .map(|joined| {
                joined.map_err(|e| Status::internal(format!("gateway task failed: {e}")))
            });
        let end = futures::stream::once(async move { failed.lock().unwrap().take().map(Err) })
            .filter_map(futures::future::ready);
        let mut answers: Self::CallStream = Box::pin(answers.chain(end));
        // The response's headers go out with the first answer, in one write: sent at once,
        // they were a write of their own and a wake-up of the client per request.
        let first = answers.next().await;
        Ok(Response::new(Box::pin(
            futures::stream::iter(first).chain(answers),
        )))
    }
}

#[tonic::async_trait]
impl JinaSingleDataRequestRpc for GrpcGateway {
    async fn process_single_data(
        &self,
        req: Request<DataRequestProto>,
    ) -> Result<Response<DataRequestProto>, Status> {
        let metadata = req.metadata().clone();
        let adopt = |span: &tracing::Span| crate::telemetry::adopt_from_metadata(span, &metadata);
        let arrived = crate::grpc::Admitted::of(req.extensions()).and_then(|a| a.next());
        let req = req.into_inner();
        let _room = self.admit(&req, arrived).await?;
        Ok(Response::new(
            self.routing.current().await.route_with(req, adopt).await,
        ))
    }
}

type DocStream = crate::grpc::ReplyStream<SingleDocumentRequestProto>;

#[tonic::async_trait]
impl JinaSingleDocumentRequestRpc for GrpcGateway {
    type stream_docStream = DocStream;

    /// A document with no executor to stream it is answered with one ERROR message, as a
    /// failing executor's would be.
    async fn stream_doc(
        &self,
        req: Request<SingleDocumentRequestProto>,
    ) -> Result<Response<DocStream>, Status> {
        let metadata = req.metadata().clone();
        let adopt = |span: &tracing::Span| crate::telemetry::adopt_from_metadata(span, &metadata);
        let req = req.into_inner();
        let header = req.header.clone().unwrap_or_default();
        let replies = match self.routing.current().await.stream_doc(req, adopt).await {
            Ok(replies) => replies,
            Err(e) => {
                let status = crate::request::error_status("ValueError", &e.to_string(), "gateway");
                let refused = SingleDocumentRequestProto {
                    header: Some(HeaderProto {
                        status: Some(status),
                        ..header
                    }),
                    ..Default::default()
                };
                futures::stream::once(std::future::ready(refused)).boxed()
            }
        };
        Ok(Response::new(replies.map(Ok).boxed()))
    }
}

#[tonic::async_trait]
impl JinaGatewayDryRunRpc for GrpcGateway {
    async fn dry_run(&self, _: Request<()>) -> Result<Response<StatusProto>, Status> {
        Ok(Response::new(self.routing.current().await.dry_run().await))
    }
}

#[tonic::async_trait]
impl JinaDiscoverEndpointsRpc for GrpcGateway {
    async fn endpoint_discovery(&self, _: Request<()>) -> Result<Response<EndpointsProto>, Status> {
        Ok(Response::new(
            self.routing.current().await.endpoints().await,
        ))
    }
}

#[tonic::async_trait]
impl JinaInfoRpc for GrpcGateway {
    async fn status(&self, _: Request<()>) -> Result<Response<JinaInfoProto>, Status> {
        Ok(Response::new(crate::grpc::jina_info()))
    }
}

/// Serves the gRPC gateway on `listener` until `shutdown` resolves. A request over
/// `max_request_bytes` is refused with RESOURCE_EXHAUSTED (tonic checks it before decoding).
pub(super) async fn serve(
    gateway: GrpcGateway,
    listener: TcpListener,
    options: crate::grpc::ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use tower::Layer;
    let limit = gateway.max_request_bytes;
    // Each message takes room as it arrives (as received, and as sent on), before tonic reads
    // it: ten big messages at once wait their turn instead of all being read.
    let admit = crate::grpc::AdmitMessages::new(&gateway.admission.budget, limit);
    let routes = tonic::service::Routes::new(
        admit.layer(crate::limited!(JinaRpcServer::new(gateway.clone()), limit)),
    )
    .add_service(admit.layer(crate::limited!(
        JinaSingleDataRequestRpcServer::new(gateway.clone()),
        limit
    )))
    .add_service(crate::limited!(
        JinaSingleDocumentRequestRpcServer::new(gateway.clone()),
        limit
    ))
    .add_service(JinaGatewayDryRunRpcServer::new(gateway.clone()))
    .add_service(JinaDiscoverEndpointsRpcServer::new(gateway.clone()))
    .add_service(JinaInfoRpcServer::new(gateway));
    crate::grpc::serve(routes, listener, options, shutdown).await
}
