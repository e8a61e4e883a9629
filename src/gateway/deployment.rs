//! One executor as the gateway sees it: its copies (shards of replicas), its optional
//! uses_before (head) and uses_after (tail), and how a request is spread over them.
//!
//! - polling ANY: one copy answers, taken in turn.
//! - polling ALL: every shard answers (one replica each, in turn); the results are merged, by the
//!   tail when there is one, else here.
//! - polling ALL_ASYNC: every shard gets the request; the first answer goes on, the others finish
//!   in the background.
//!
//! Every call to a shard follows the executor's [`CallPolicy`]: a copy its supervisor reports
//! down is skipped; a call that fails is tried on another replica when that cannot repeat work
//! (the copy was down or refused the connection) or when the endpoint is idempotent; a call not
//! answered within `timeout_send` is a `TimeoutError`. A shard that cannot answer gives an ERROR
//! response naming the executor and its copies, never a hang.
//!
//! A streamed document (`stream_doc`) goes to one copy of the next shard in turn, chosen by the
//! same policy until its stream opens; a head or tail is not visited. Messages are passed on
//! as they come; a stream that breaks off ends with an ERROR message.

use super::GatewayError;
use super::ratelimit::RateLimitedLog;
use crate::flow::{CallPolicy, Polling};
use crate::health::{CopyState, Liveness};
use crate::proto::jina::{
    DataRequestListProto, DataRequestProto, EndpointsProto, SingleDocumentRequestProto,
    jina_data_request_rpc_client::JinaDataRequestRpcClient,
    jina_discover_endpoints_rpc_client::JinaDiscoverEndpointsRpcClient,
    jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient,
    jina_single_document_request_rpc_client::JinaSingleDocumentRequestRpcClient,
};
use crate::request;
use crate::topology::{CopyAddress, DeploymentAddresses};
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::transport::Channel;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call to a shard gave no answer.
#[derive(Debug)]
enum CallError {
    /// Every replica of the shard is down, as their supervisors say.
    Down(Vec<String>),
    /// The copy could not be reached or broke off.
    Transport {
        copy: String,
        address: String,
        status: tonic::Status,
    },
    /// No answer within `timeout_send`.
    Timeout { copy: String, after: Duration },
}

impl CallError {
    fn in_transit(&self) -> request::InTransit {
        match self {
            CallError::Timeout { .. } => request::InTransit::Timeout,
            _ => request::InTransit::Unreachable,
        }
    }

    fn describe(&self, executor: &str) -> String {
        match self {
            CallError::Down(copies) => {
                format!("executor '{executor}' is down: {}", copies.join("; "))
            }
            CallError::Transport {
                copy,
                address,
                status,
            } => format!(
                "executor '{executor}' ({copy} at {address}) is unreachable or failed: {} ({})",
                status.message(),
                status.code()
            ),
            CallError::Timeout { copy, after } => format!(
                "executor '{executor}' ({copy}) did not answer within {} ms (timeout_send)",
                after.as_millis()
            ),
        }
    }
}

/// Whether a failed call surely never reached the executor's handler: the connection was
/// refused or never made. Anything else (a reset mid-call) may have run the handler.
fn never_reached(status: &tonic::Status) -> bool {
    crate::errors::causes(status).any(|e| {
        // tonic marks every failure to connect (refused, unresolvable, timed out) by type.
        e.is::<tonic::ConnectError>()
            || e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotConnected
                )
            })
    })
}

/// How several requests go to one copy.
#[derive(Clone, Copy, PartialEq)]
enum Several {
    /// The parents of a join: merged by id, by the copy itself when it can, else here.
    Join,
    /// The shards' answers, to the `uses_after`: handed over as they are, as Python Jina's head
    /// hands them (the executor gets Jina's `docs_matrix`).
    Apart,
}

/// One executor copy: its address, whether it is up, and a lazily connected channel to it.
/// An address whose host is a DNS name may stand for several copies (a headless Service):
/// its channel then spreads requests over every address the name resolves to.
#[derive(Clone)]
pub(crate) struct Copy {
    pub address: String,
    liveness: Liveness,
    channel: Channel,
    /// For a name: how many addresses it resolves to now.
    resolved: Option<tokio::sync::watch::Receiver<Option<usize>>>,
}

impl Copy {
    fn new(copy: &CopyAddress, tls: Option<&crate::tls::ClientTls>) -> Result<Copy, GatewayError> {
        let bad = |why| GatewayError::BadAddress {
            executor: copy.liveness.label().to_string(),
            why,
        };
        let (host, port) = crate::net::host_port(&copy.address).map_err(bad)?;
        // Over TLS the certificate names the host: one connection to the name, as given.
        let (channel, resolved) = match tls.is_none() && crate::grpc::is_service_name(host) {
            true => {
                let (channel, resolved) =
                    crate::grpc::balanced_channel(host, port, CONNECT_TIMEOUT).map_err(bad)?;
                (channel, Some(resolved))
            }
            false => (
                crate::grpc::channel(host, port, CONNECT_TIMEOUT, tls).map_err(bad)?,
                None,
            ),
        };
        Ok(Copy {
            address: copy.address.clone(),
            liveness: copy.liveness.clone(),
            channel,
            resolved,
        })
    }

    pub(crate) fn label(&self) -> &str {
        self.liveness.label()
    }

    pub(crate) fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Sends one request, or several: a join's, for the executor to merge (it is told so), or
    /// the shards' answers, apart.
    async fn call(
        &self,
        mut requests: Vec<DataRequestProto>,
        several: Several,
    ) -> Result<DataRequestProto, tonic::Status> {
        self.resolves().await?;
        // The trace context of the gateway's `call` span goes along in the metadata.
        let reply = if requests.len() == 1 {
            let mut client =
                crate::unlimited!(JinaSingleDataRequestRpcClient::new(self.channel.clone()));
            let mut request = tonic::Request::new(requests.pop().unwrap());
            crate::telemetry::inject(request.metadata_mut());
            client.process_single_data(request).await?
        } else {
            let mut client = crate::unlimited!(JinaDataRequestRpcClient::new(self.channel.clone()));
            let mut request = tonic::Request::new(DataRequestListProto { requests });
            crate::telemetry::inject(request.metadata_mut());
            if several == Several::Join {
                let join = tonic::metadata::MetadataValue::from_static("merge");
                request
                    .metadata_mut()
                    .insert(crate::executor::JOIN_METADATA, join);
            }
            client.process_data(request).await?
        };
        Ok(reply.into_inner())
    }

    /// Opens a `stream_doc` call: its messages come as the executor yields them.
    async fn stream_doc(
        &self,
        req: SingleDocumentRequestProto,
    ) -> Result<tonic::Streaming<SingleDocumentRequestProto>, tonic::Status> {
        self.resolves().await?;
        let mut client = crate::unlimited!(JinaSingleDocumentRequestRpcClient::new(
            self.channel.clone()
        ));
        let mut request = tonic::Request::new(req);
        crate::telemetry::inject(request.metadata_mut());
        Ok(client.stream_doc(request).await?.into_inner())
    }

    /// A name that resolves to no address cannot be called: say so rather than wait (after
    /// giving its first resolution up to [`CONNECT_TIMEOUT`]).
    async fn resolves(&self) -> Result<(), tonic::Status> {
        let Some(resolved) = &self.resolved else {
            return Ok(());
        };
        let mut count = *resolved.borrow();
        if count.is_none() {
            let mut first = resolved.clone();
            let answered = first.wait_for(Option::is_some);
            if let Ok(Ok(n)) = tokio::time::timeout(CONNECT_TIMEOUT, answered).await {
                count = *n;
            }
        }
        match count {
            None | Some(0) => Err(tonic::Status::unavailable(format!(
                "{} resolves to no address",
                self.address
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) async fn endpoints(&self) -> Result<EndpointsProto, tonic::Status> {
        self.resolves().await?;
        let mut client = JinaDiscoverEndpointsRpcClient::new(self.channel.clone());
        Ok(client.endpoint_discovery(()).await?.into_inner())
    }

    /// Whether the copy serves: down as its supervisor says, else as its health check says.
    pub(crate) async fn is_serving(&self) -> Result<(), String> {
        if let CopyState::Down(why) = self.liveness.state() {
            return Err(format!("{} {why}", self.label()));
        }
        self.resolves().await.map_err(|e| e.message().to_string())?;
        crate::grpc::check_channel_serving(self.channel.clone(), CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("{} at {}: {e}", self.label(), self.address))
    }
}

/// The replicas of one shard (or a head or tail, with one), used in turn.
struct Shard {
    replicas: Vec<Copy>,
    next: AtomicUsize,
    /// Whether its executor merges the parents of a join itself (else the gateway does).
    merges_joins: bool,
}

impl Shard {
    /// The shard of these copies; a copy `before` has at the same address is taken over
    /// (its connection and liveness), not dialled again.
    fn new(
        copies: &[CopyAddress],
        tls: Option<&crate::tls::ClientTls>,
        before: Option<&Deployment>,
    ) -> Result<Shard, GatewayError> {
        let known = |c: &CopyAddress| {
            before?
                .copies()
                .find(|k| k.address == c.address && k.label() == c.liveness.label())
                .cloned()
        };
        Ok(Shard {
            replicas: copies
                .iter()
                .map(|c| known(c).map_or_else(|| Copy::new(c, tls), Ok))
                .collect::<Result<_, _>>()?,
            next: AtomicUsize::new(0),
            merges_joins: copies.iter().all(|c| c.merges_joins),
        })
    }

    /// The replicas in the order this call tries them: the next in turn first, then the
    /// others; those reported down are left out.
    fn candidates(&self) -> Result<Vec<&Copy>, CallError> {
        let n = self.replicas.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let up: Vec<&Copy> = (0..n)
            .map(|i| &self.replicas[(first + i) % n])
            .filter(|c| c.liveness.is_up())
            .collect();
        if up.is_empty() {
            return Err(CallError::Down(
                self.replicas
                    .iter()
                    .map(|c| match c.liveness.state() {
                        CopyState::Down(why) => format!("{} {why}", c.label()),
                        CopyState::Up => c.label().to_string(),
                    })
                    .collect(),
            ));
        }
        Ok(up)
    }

    /// Calls one replica after the policy: skips copies that are down, tries another on a
    /// failure that allows it, and gives up after `timeout_send`.
    async fn call(
        &self,
        mut requests: Vec<DataRequestProto>,
        policy: &CallPolicy,
        several: Several,
    ) -> Result<DataRequestProto, CallError> {
        if requests.len() > 1 && several == Several::Join && !self.merges_joins {
            // One request, its documents merged by id, as Python Jina's gateway sends a join.
            let merged = merge(requests);
            if request::is_error(&merged) {
                return Ok(merged);
            }
            requests = vec![merged];
        }
        let endpoint = requests
            .first()
            .map(|r| request::endpoint(r).to_string())
            .unwrap_or_default();
        let idempotent = policy.idempotent.allows(&endpoint);
        let (answer, _) = self
            .try_replicas(policy, idempotent, |copy| {
                copy.call(requests.clone(), several)
            })
            .await?;
        Ok(answer)
    }

    /// Opens a stream on one replica after the policy, as [`Shard::call`] calls one (a stream
    /// is never opened twice on the chance that it is idempotent).
    async fn open_stream(
        &self,
        req: SingleDocumentRequestProto,
        policy: &CallPolicy,
    ) -> Result<OpenStream, CallError> {
        let (stream, copy) = self
            .try_replicas(policy, false, |copy| copy.stream_doc(req.clone()))
            .await?;
        Ok(OpenStream {
            stream,
            copy: copy.label().into(),
            address: copy.address.clone(),
        })
    }

    /// Makes `attempt` on the replicas in turn: skips copies that are down, tries another
    /// when the copy was never reached or went down (or always, when `idempotent`), and gives
    /// up after `timeout_send`. The outcome, and the copy that gave it.
    async fn try_replicas<'a, T, Fut>(
        &'a self,
        policy: &CallPolicy,
        idempotent: bool,
        attempt: impl Fn(&'a Copy) -> Fut,
    ) -> Result<(T, &'a Copy), CallError>
    where
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let candidates = self.candidates()?;
        let tries = 1 + policy
            .retries
            .unwrap_or(usize::MAX)
            .min(candidates.len() - 1);
        let mut last = None;
        for copy in candidates.into_iter().take(tries) {
            // A copy may have gone down while an earlier one was tried.
            if !copy.liveness.is_up() && last.is_some() {
                continue;
            }
            let call = attempt(copy);
            let outcome = match policy.timeout_send {
                Some(after) => match tokio::time::timeout(after, call).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        return Err(CallError::Timeout {
                            copy: copy.label().into(),
                            after,
                        });
                    }
                },
                None => call.await,
            };
            match outcome {
                Ok(answer) => return Ok((answer, copy)),
                Err(status) => {
                    let retry = never_reached(&status) || !copy.liveness.is_up() || idempotent;
                    last = Some(CallError::Transport {
                        copy: copy.label().into(),
                        address: copy.address.clone(),
                        status,
                    });
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last.expect("at least one replica was tried"))
    }
}

/// A `stream_doc` call that opened, and on which copy.
struct OpenStream {
    stream: tonic::Streaming<SingleDocumentRequestProto>,
    copy: String,
    address: String,
}

/// An executor of the Flow, ready to take requests.
pub(crate) struct Deployment {
    pub name: String,
    polling: Polling,
    polling_by_endpoint: std::collections::BTreeMap<String, Polling>,
    shards: Vec<Arc<Shard>>,
    next_shard: AtomicUsize,
    head: Option<Shard>,
    tail: Option<Shard>,
    policy: Arc<CallPolicy>,
    failures: RateLimitedLog,
}

impl Deployment {
    pub(crate) fn new(
        addresses: &DeploymentAddresses,
        policy: CallPolicy,
        tls: Option<&crate::tls::ClientTls>,
    ) -> Result<Deployment, GatewayError> {
        Deployment::reusing(addresses, policy, tls, None)
    }

    /// [`Deployment::new`], taking over the copies `before` has at the same addresses (a
    /// reload that adds or drops replicas keeps the connections to the others).
    pub(crate) fn reusing(
        addresses: &DeploymentAddresses,
        policy: CallPolicy,
        tls: Option<&crate::tls::ClientTls>,
        before: Option<&Deployment>,
    ) -> Result<Deployment, GatewayError> {
        let tls = if addresses.tls { tls } else { None };
        if addresses.tls && tls.is_none() {
            return Err(GatewayError::NoTlsClient {
                executor: addresses.name.clone(),
            });
        }
        let shards = addresses
            .shards
            .iter()
            .map(|replicas| Shard::new(replicas, tls, before).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        if shards.is_empty() || shards.iter().any(|s| s.replicas.is_empty()) {
            return Err(GatewayError::NoAddress {
                executor: addresses.name.clone(),
            });
        }
        let single = |c: &Option<CopyAddress>| {
            c.as_ref()
                .map(|c| Shard::new(std::slice::from_ref(c), tls, before))
                .transpose()
        };
        Ok(Deployment {
            name: addresses.name.clone(),
            polling: addresses.polling,
            polling_by_endpoint: addresses.polling_by_endpoint.clone(),
            shards,
            next_shard: AtomicUsize::new(0),
            head: single(&addresses.head)?,
            tail: single(&addresses.tail)?,
            policy: Arc::new(policy),
            failures: RateLimitedLog::new(Duration::from_secs(5)),
        })
    }

    /// Every copy, head and tail included.
    pub(crate) fn copies(&self) -> impl Iterator<Item = &Copy> {
        self.shards
            .iter()
            .map(|s| &**s)
            .chain(self.head.iter())
            .chain(self.tail.iter())
            .flat_map(|s| s.replicas.iter())
    }

    /// Sends `requests` (one, or the parents of a join) through this executor and returns its
    /// answer. A failure to get one comes back as an ERROR response naming the executor.
    pub(crate) async fn process(&self, mut requests: Vec<DataRequestProto>) -> DataRequestProto {
        if let Some(when) = &self.policy.when
            && let Err(answer) = self.keep_matching(when, &mut requests)
        {
            return answer;
        }
        let fallback = requests.first().cloned().unwrap_or_default();
        match self.try_process(requests).await {
            Ok(r) => r,
            Err(e) => self.call_error(fallback, e),
        }
    }

    /// Jina 3's `when`: only the documents that match go to the executor (those of each
    /// parent of a join, filtered apart), and only what it answers goes on; a document that
    /// does not match stops here, as in Python Jina. A parent's error, or documents that
    /// cannot be read, are the answer.
    #[allow(
        clippy::result_large_err,
        reason = "the error is the answer to send on, on a cold path"
    )]
    fn keep_matching(
        &self,
        when: &crate::document::Query,
        requests: &mut [DataRequestProto],
    ) -> Result<(), DataRequestProto> {
        for req in requests {
            if request::is_error(req) {
                return Err(req.clone());
            }
            request::retain_docs(req, |d| when.matches(&d))
                .map_err(|e| self.decode_error(req.clone(), e))?;
        }
        Ok(())
    }

    fn decode_error(&self, mut req: DataRequestProto, e: prost::DecodeError) -> DataRequestProto {
        request::set_error(
            &mut req,
            request::error_status("DecodeError", &e.to_string(), &self.name),
        );
        req
    }

    async fn try_process(
        &self,
        mut requests: Vec<DataRequestProto>,
    ) -> Result<DataRequestProto, CallError> {
        let policy = &self.policy;
        if let Some(head) = &self.head {
            let r = head.call(requests, policy, Several::Join).await?;
            if request::is_error(&r) {
                return Ok(r);
            }
            requests = vec![r];
        }
        let endpoint = requests.first().map(request::endpoint).unwrap_or_default();
        let polling = self
            .polling
            .for_endpoint(&self.polling_by_endpoint, endpoint);
        let result = match polling {
            Polling::Any => {
                let n = self.next_shard.fetch_add(1, Ordering::Relaxed);
                self.shards[n % self.shards.len()]
                    .call(requests, policy, Several::Join)
                    .await?
            }
            _ if self.shards.len() == 1 => {
                self.shards[0].call(requests, policy, Several::Join).await?
            }
            Polling::All => {
                let calls = self
                    .shards
                    .iter()
                    .map(|s| s.call(requests.clone(), policy, Several::Join));
                let answers = futures::future::try_join_all(calls).await?;
                if let Some(failed) = answers.iter().find(|r| request::is_error(r)) {
                    return Ok(failed.clone());
                }
                match &self.tail {
                    Some(tail) => return tail.call(answers, policy, Several::Apart).await,
                    None => merge(answers),
                }
            }
            Polling::AllAsync => {
                // Every shard runs to its end, in the background; the first answer goes on.
                let (first_tx, mut first_rx) = tokio::sync::mpsc::channel(self.shards.len());
                for shard in &self.shards {
                    let (shard, policy) = (shard.clone(), policy.clone());
                    let (first_tx, requests) = (first_tx.clone(), requests.clone());
                    tokio::spawn(async move {
                        let answer = shard.call(requests, &policy, Several::Join).await;
                        let _ = first_tx.send(answer).await;
                    });
                }
                first_rx
                    .recv()
                    .await
                    .expect("every shard sends its answer")?
            }
        };
        match &self.tail {
            Some(tail) if !request::is_error(&result) => {
                tail.call(vec![result], policy, Several::Apart).await
            }
            _ => Ok(result),
        }
    }

    /// Streams one document through a copy of this executor: its messages as they come; a
    /// failure to open, or a stream that breaks off, ends it with an ERROR message.
    pub(crate) async fn stream_doc(
        &self,
        req: SingleDocumentRequestProto,
    ) -> BoxStream<'static, SingleDocumentRequestProto> {
        let header = req.header.clone();
        let executor = self.name.clone();
        let failed = move |e: CallError| {
            let status = e.in_transit().status(&e.describe(&executor), &executor);
            let mut header = header.clone().unwrap_or_default();
            header.status = Some(status);
            SingleDocumentRequestProto {
                header: Some(header),
                ..Default::default()
            }
        };
        let n = self.next_shard.fetch_add(1, Ordering::Relaxed);
        let shard = &self.shards[n % self.shards.len()];
        let OpenStream {
            stream,
            copy,
            address,
        } = match shard.open_stream(req, &self.policy).await {
            Ok(open) => open,
            Err(e) => {
                self.failures.warn(&e.describe(&self.name));
                return futures::stream::once(std::future::ready(failed(e))).boxed();
            }
        };
        stream
            .scan(false, move |broke, item| {
                if *broke {
                    return std::future::ready(None);
                }
                let message = item.unwrap_or_else(|status| {
                    *broke = true;
                    failed(CallError::Transport {
                        copy: copy.clone(),
                        address: address.clone(),
                        status,
                    })
                });
                std::future::ready(Some(message))
            })
            .boxed()
    }

    fn call_error(&self, mut req: DataRequestProto, e: CallError) -> DataRequestProto {
        let message = e.describe(&self.name);
        self.failures.warn(&message);
        request::set_error(&mut req, e.in_transit().status(&message, &self.name));
        req
    }
}

/// Merges the answers of several copies or parents into one request.
pub(super) fn merge(answers: Vec<DataRequestProto>) -> DataRequestProto {
    if answers.len() == 1 {
        return answers.into_iter().next().unwrap();
    }
    match request::merge(answers) {
        Ok((merged, _)) => merged,
        Err((mut first, e)) => {
            request::set_error(
                &mut first,
                request::error_status("DecodeError", &e.to_string(), "gateway"),
            );
            first
        }
    }
}
