//! The copies of an executor: every replica of every shard, its uses_before and uses_after,
//! each with its names, its overrides and what it runs. The one place that names copies, for
//! the Flow that starts them and for `jina export` that writes them down.

use crate::executor::{Overrides, Served};
use crate::flow::{ExecutorSpec, ServedEntry};

/// Which copy of an executor a process is: what Python Jina calls its runtime args.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CopyId {
    pub shard: u32,
    pub shards: u32,
    pub replica: u32,
    pub replicas: u32,
}

impl CopyId {
    /// The copy of a single executor (or of a uses_before / uses_after).
    pub(crate) const SINGLE: CopyId = CopyId {
        shard: 0,
        shards: 1,
        replica: 0,
        replicas: 1,
    };

    /// The copy's name in our logs and labels: `name`, `name/rep-1`, `name/shard-0`,
    /// `name/shard-0/rep-1`.
    pub(crate) fn label(&self, name: &str) -> String {
        match (self.shards > 1, self.replicas > 1) {
            (false, false) => name.to_string(),
            (true, false) => format!("{name}/shard-{}", self.shard),
            (false, true) => format!("{name}/rep-{}", self.replica),
            (true, true) => format!("{name}/shard-{}/rep-{}", self.shard, self.replica),
        }
    }

    /// The pod name Python Jina gives this copy (`name/rep-0`, `name/shard-1/rep-0`): what a
    /// Python executor sees as `runtime_args.name` and keys `__results__` by.
    pub(crate) fn python_name(&self, name: &str) -> String {
        match self.shards > 1 {
            true => format!("{name}/shard-{}/rep-{}", self.shard, self.replica),
            false => format!("{name}/rep-{}", self.replica),
        }
    }

    /// The runtime args as `jina executor`'s flags (ours and Python Jina's).
    pub(crate) fn flags(&self) -> crate::executor::CopyFlags {
        crate::executor::CopyFlags {
            shard_id: self.shard,
            shards: self.shards,
            replica_id: self.replica,
            replicas: self.replicas,
        }
    }
}

/// Where a copy sits in its executor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Role {
    /// A replica of this shard.
    Copy { shard: u32 },
    /// The uses_before, which sees each request before the shards.
    Head,
    /// The uses_after, which merges the shards' answers.
    Tail,
}

/// A copy's place in its executor, whatever the count of copies: what a reload keeps, starts
/// or stops when only `replicas` changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Slot {
    Replica { shard: u32, replica: u32 },
    Head,
    Tail,
}

/// A started copy, as a reload picks the ones to stop: its executor, its slot, and the port it
/// serves on (two copies of one slot run side by side while one replaces the other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CopyKey {
    pub executor: String,
    pub slot: Slot,
    pub port: u16,
}

/// One process (or container) of an executor: what it runs and under which names.
#[derive(Debug)]
pub(crate) struct CopySpec<'a> {
    pub role: Role,
    pub id: CopyId,
    /// Its name in our logs and labels (`enc/shard-1/rep-0`, `enc/head`).
    pub label: String,
    /// The name Python Jina would give it (`enc/shard-1/rep-0`, `enc/uses_before-0`).
    pub python_name: String,
    /// What it runs, as the Flow's check resolved it.
    pub served: &'a Served,
    /// The entry's overrides, with the workspace and (for a shard) its place laid in.
    pub overrides: Overrides,
    /// A fixed port: only for an executor of a single copy (`port_in`).
    pub port: Option<u16>,
    /// A fixed port for its `/metrics`, likewise (`port_monitoring`).
    pub port_monitoring: Option<u16>,
    /// The entry's `entrypoint`, for its own copies (not its uses_before / uses_after).
    pub entrypoint: Option<&'a str>,
}

impl CopySpec<'_> {
    pub(crate) fn slot(&self) -> Slot {
        match self.role {
            Role::Copy { shard } => Slot::Replica {
                shard,
                replica: self.id.replica,
            },
            Role::Head => Slot::Head,
            Role::Tail => Slot::Tail,
        }
    }
}

/// Every copy of an executor that is not external: each replica of each shard, then its
/// uses_before and uses_after. `served` is what the Flow's check resolved for the entry.
pub(crate) fn copies_of<'a>(
    exec: &'a ExecutorSpec,
    name: &str,
    served: &'a ServedEntry,
) -> Vec<CopySpec<'a>> {
    let ServedEntry::Copies {
        uses,
        uses_before,
        uses_after,
    } = served
    else {
        return vec![];
    };
    let single = exec.shards * exec.replicas == 1;
    let mut copies = vec![];
    for shard in 0..exec.shards {
        for replica in 0..exec.replicas {
            let id = CopyId {
                shard,
                shards: exec.shards,
                replica,
                replicas: exec.replicas,
            };
            let mut overrides = with_workspace(&exec.overrides, exec.workspace.as_deref());
            // Each shard learns which part of the data is its own (Jina 3's runtime args).
            if exec.shards > 1 {
                overrides.uses_metas.insert("shard_id".into(), shard.into());
                overrides
                    .uses_metas
                    .insert("shards".into(), exec.shards.into());
            }
            copies.push(CopySpec {
                role: Role::Copy { shard },
                id,
                label: id.label(name),
                python_name: id.python_name(name),
                served: uses,
                overrides,
                port: exec.port_in.filter(|_| single),
                port_monitoring: exec.port_monitoring.filter(|_| single),
                entrypoint: exec.entrypoint.as_deref(),
            });
        }
    }
    for (role, served, suffix, python_suffix) in [
        (Role::Head, uses_before, "head", "uses_before-0"),
        (Role::Tail, uses_after, "tail", "uses_after-0"),
    ] {
        if let Some(served) = served {
            copies.push(CopySpec {
                role,
                id: CopyId::SINGLE,
                label: format!("{name}/{suffix}"),
                python_name: format!("{name}/{python_suffix}"),
                served,
                overrides: with_workspace(&Overrides::default(), exec.workspace.as_deref()),
                port: None,
                port_monitoring: None,
                entrypoint: None,
            });
        }
    }
    copies
}

/// The overrides with the executor's `workspace` option laid into its metas.
fn with_workspace(overrides: &Overrides, workspace: Option<&str>) -> Overrides {
    let mut o = overrides.clone();
    if let Some(w) = workspace {
        o.uses_metas.entry("workspace").or_insert_with(|| w.into());
    }
    o
}
