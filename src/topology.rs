//! Where a Flow's executors listen: what orchestration hands the gateway, and all the gateway
//! knows of processes. A leaf: addresses and liveness only, no process and no request.

use crate::flow::Polling;
use crate::health::Liveness;

/// Where one executor copy listens (`host:port`), and whether it is up.
#[derive(Clone, Debug)]
pub(crate) struct CopyAddress {
    pub address: String,
    pub liveness: Liveness,
    /// Whether it merges the parents of a join by document id itself (`process_data`, as ours
    /// do). Python Jina's worker only concatenates them, so the gateway merges first for it,
    /// as Python Jina's gateway does; and for an external executor, which may be either.
    pub merges_joins: bool,
}

impl CopyAddress {
    /// A copy that runs elsewhere, under nobody's supervision here.
    pub(crate) fn external(address: String) -> CopyAddress {
        CopyAddress {
            liveness: Liveness::unsupervised(&address),
            address,
            merges_joins: false,
        }
    }
}

/// Where the copies of one executor listen.
#[derive(Clone, Debug)]
pub(crate) struct DeploymentAddresses {
    pub name: String,
    pub polling: Polling,
    /// Polling for particular endpoints (Jina 3's map form); `polling` for the rest.
    pub polling_by_endpoint: std::collections::BTreeMap<String, Polling>,
    /// One list of replica addresses per shard.
    pub shards: Vec<Vec<CopyAddress>>,
    /// The uses_before executor, which sees each request before the shards.
    pub head: Option<CopyAddress>,
    /// The uses_after executor, which receives the shards' results and merges them.
    pub tail: Option<CopyAddress>,
    /// Whether the copies serve TLS (an external executor with `tls: true`).
    pub tls: bool,
}

/// The addresses of every executor of a Flow, in the Flow's order.
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    pub deployments: Vec<DeploymentAddresses>,
}
