//! One executor as the gateway sees it: its copies (shards of replicas), its optional
//! uses_before (head) and uses_after (tail), and how a request is spread over them.
//!
//! - polling ANY: one copy answers, taken in turn.
//! - polling ALL: every shard answers (one replica each, in turn); the results are merged, by the
//!   tail when there is one, else here.
//! - polling ALL_ASYNC: every shard gets the request; the first answer goes on, the others finish
//!   in the background.
//!
//! A copy that cannot be reached gives an ERROR response naming the executor, never a hang.

use crate::flow::Polling;
use crate::orchestrate::DeploymentAddresses;
use crate::proto::jina::{
    DataRequestListProto, DataRequestProto, EndpointsProto,
    jina_data_request_rpc_client::JinaDataRequestRpcClient,
    jina_discover_endpoints_rpc_client::JinaDiscoverEndpointsRpcClient,
    jina_single_data_request_rpc_client::JinaSingleDataRequestRpcClient,
};
use crate::request;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic::transport::Channel;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One executor copy: its address and a lazily connected channel to it.
#[derive(Clone)]
pub struct Copy {
    pub address: String,
    channel: Channel,
}

impl Copy {
    fn new(address: &str) -> Result<Copy, String> {
        let (host, port) = address
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
            .ok_or_else(|| format!("bad executor address '{address}' (expected host:port)"))?;
        Ok(Copy {
            address: address.into(),
            channel: crate::grpc::channel(host, port, CONNECT_TIMEOUT)?,
        })
    }

    /// Sends one request, or several to be merged by the executor (a join).
    async fn call(
        &self,
        mut requests: Vec<DataRequestProto>,
    ) -> Result<DataRequestProto, tonic::Status> {
        let reply = if requests.len() == 1 {
            let mut client =
                crate::unlimited!(JinaSingleDataRequestRpcClient::new(self.channel.clone()));
            client.process_single_data(requests.pop().unwrap()).await?
        } else {
            let mut client = crate::unlimited!(JinaDataRequestRpcClient::new(self.channel.clone()));
            client
                .process_data(DataRequestListProto { requests })
                .await?
        };
        Ok(reply.into_inner())
    }

    pub async fn endpoints(&self) -> Result<EndpointsProto, tonic::Status> {
        let mut client = JinaDiscoverEndpointsRpcClient::new(self.channel.clone());
        Ok(client.endpoint_discovery(()).await?.into_inner())
    }

    pub async fn is_serving(&self) -> Result<(), String> {
        let (host, port) = self
            .address
            .rsplit_once(':')
            .unwrap_or((&self.address, "0"));
        crate::grpc::check_serving(host, port.parse().unwrap_or(0), CONNECT_TIMEOUT).await
    }
}

/// The replicas of one shard, used in turn.
struct Shard {
    replicas: Vec<Copy>,
    next: AtomicUsize,
}

impl Shard {
    fn pick(&self) -> &Copy {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.replicas[n % self.replicas.len()]
    }
}

/// An executor of the Flow, ready to take requests.
pub struct Deployment {
    pub name: String,
    polling: Polling,
    shards: Vec<Shard>,
    next_shard: AtomicUsize,
    head: Option<Copy>,
    tail: Option<Copy>,
}

impl Deployment {
    pub fn new(addresses: &DeploymentAddresses) -> Result<Deployment, String> {
        let shards = addresses
            .shards
            .iter()
            .map(|replicas| {
                Ok(Shard {
                    replicas: replicas
                        .iter()
                        .map(|a| Copy::new(a))
                        .collect::<Result<_, String>>()?,
                    next: AtomicUsize::new(0),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if shards.is_empty() || shards.iter().any(|s| s.replicas.is_empty()) {
            return Err(format!("{}: no executor address", addresses.name));
        }
        Ok(Deployment {
            name: addresses.name.clone(),
            polling: addresses.polling,
            shards,
            next_shard: AtomicUsize::new(0),
            head: addresses.head.as_deref().map(Copy::new).transpose()?,
            tail: addresses.tail.as_deref().map(Copy::new).transpose()?,
        })
    }

    /// Every copy, head and tail included.
    pub fn copies(&self) -> impl Iterator<Item = &Copy> {
        self.shards
            .iter()
            .flat_map(|s| s.replicas.iter())
            .chain(self.head.iter())
            .chain(self.tail.iter())
    }

    /// Sends `requests` (one, or the parents of a join) through this executor and returns its
    /// answer. Transport failures come back as an ERROR response naming the executor.
    pub async fn process(&self, requests: Vec<DataRequestProto>) -> DataRequestProto {
        let fallback = requests.first().cloned().unwrap_or_default();
        match self.try_process(requests).await {
            Ok(r) => r,
            Err((copy, status)) => self.transport_error(fallback, &copy, status),
        }
    }

    async fn try_process(
        &self,
        mut requests: Vec<DataRequestProto>,
    ) -> Result<DataRequestProto, (String, tonic::Status)> {
        let on = |c: &Copy| {
            let address = c.address.clone();
            move |s| (address, s)
        };
        if let Some(head) = &self.head {
            let r = head.call(requests).await.map_err(on(head))?;
            if request::is_error(&r) {
                return Ok(r);
            }
            requests = vec![r];
        }
        let result = match self.polling {
            Polling::Any => {
                let n = self.next_shard.fetch_add(1, Ordering::Relaxed);
                let copy = self.shards[n % self.shards.len()].pick();
                copy.call(requests).await.map_err(on(copy))?
            }
            _ if self.shards.len() == 1 => {
                let copy = self.shards[0].pick();
                copy.call(requests).await.map_err(on(copy))?
            }
            Polling::All => {
                let calls = self.shards.iter().map(|s| {
                    let copy = s.pick();
                    let requests = requests.clone();
                    async move { copy.call(requests).await.map_err(on(copy)) }
                });
                let answers = futures::future::try_join_all(calls).await?;
                if let Some(failed) = answers.iter().find(|r| request::is_error(r)) {
                    return Ok(failed.clone());
                }
                match &self.tail {
                    Some(tail) => return tail.call(answers).await.map_err(on(tail)),
                    None => merge(answers),
                }
            }
            Polling::AllAsync => {
                let (first_tx, first_rx) = tokio::sync::oneshot::channel();
                let first_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(first_tx)));
                for s in &self.shards {
                    let copy = s.pick().clone();
                    let requests = requests.clone();
                    let first_tx = first_tx.clone();
                    tokio::spawn(async move {
                        let answer = copy
                            .call(requests)
                            .await
                            .map_err(|s| (copy.address.clone(), s));
                        if let Some(tx) = first_tx.lock().unwrap().take() {
                            let _ = tx.send(answer);
                        }
                    });
                }
                first_rx.await.map_err(|_| {
                    (
                        self.name.clone(),
                        tonic::Status::internal("no shard answered"),
                    )
                })??
            }
        };
        match &self.tail {
            Some(tail) if !request::is_error(&result) => {
                tail.call(vec![result]).await.map_err(on(tail))
            }
            _ => Ok(result),
        }
    }

    fn transport_error(
        &self,
        mut req: DataRequestProto,
        address: &str,
        status: tonic::Status,
    ) -> DataRequestProto {
        let message = format!(
            "executor '{}' at {address} is unreachable or failed: {} ({})",
            self.name,
            status.message(),
            status.code()
        );
        tracing::warn!("{message}");
        request::set_error(
            &mut req,
            request::error_status("ConnectionError", &message, &self.name),
        );
        req
    }
}

/// Merges the answers of several copies or parents into one request.
pub fn merge(answers: Vec<DataRequestProto>) -> DataRequestProto {
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
