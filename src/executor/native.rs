//! Executors given as Rust values or constructors by a library user (the reference's
//! `f.add(uses=MyExecutor)`, "a local native Executor in the context"). A Flow serves them
//! in its own process behind the same gRPC interface as every other executor, so the gateway
//! cannot tell them apart.

use super::config::{Instance, Metas, Overrides};
use super::{Executor, RequestTable};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

type Make = dyn Fn(&Map<String, Value>, &Metas) -> Result<Arc<dyn Executor>, String> + Send + Sync;

/// A user's executor type, ready to be instantiated with `uses_with` and `uses_metas`.
#[derive(Clone)]
pub struct Native {
    /// The name used in logs and YAML (usually the type's name).
    pub type_name: String,
    make: Arc<Make>,
}

impl Native {
    /// A ready value: every copy shares it. It takes no `uses_with` (it is already built).
    pub fn value<E: Executor>(type_name: &str, executor: E) -> Native {
        let shared: Arc<dyn Executor> = Arc::new(executor);
        let name = type_name.to_string();
        Native {
            type_name: type_name.into(),
            make: Arc::new(move |with, _| {
                if let Some(k) = with.keys().next() {
                    return Err(format!(
                        "uses_with.{k}: {name} is a ready value; give a constructor to take arguments"
                    ));
                }
                Ok(shared.clone())
            }),
        }
    }

    /// A constructor from the `with` arguments and metas (the reference's `__init__`): each copy
    /// gets its own instance.
    pub fn constructor<E: Executor>(
        type_name: &str,
        create: impl Fn(&Map<String, Value>, &Metas) -> Result<E, String> + Send + Sync + 'static,
    ) -> Native {
        Native {
            type_name: type_name.into(),
            make: Arc::new(move |with, metas| {
                Ok(Arc::new(create(with, metas)?) as Arc<dyn Executor>)
            }),
        }
    }

    /// Builds an instance named `name`, after the overrides.
    pub fn instantiate(&self, name: &str, overrides: &Overrides) -> Result<Instance, String> {
        let mut metas: Metas = serde_json::from_value(Value::Object(overrides.uses_metas.clone()))
            .map_err(|e| format!("uses_metas: {e}"))?;
        metas.name.get_or_insert_with(|| name.to_string());
        let executor = (self.make)(&overrides.uses_with, &metas)?;
        let table = RequestTable::build(
            &executor.handlers(),
            [("uses_requests", &overrides.uses_requests)],
        )?;
        Ok(Instance {
            name: name.into(),
            executor,
            table,
            metas,
        })
    }
}

impl fmt::Debug for Native {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Native({})", self.type_name)
    }
}

impl PartialEq for Native {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.make, &other.make)
    }
}
