//! The request table: which handler answers which endpoint.
//!
//! Built in three layers, each on top of the last, as the reference does: the bindings of the
//! executor's code, then the YAML's `requests`, then a Flow's `uses_requests`. An endpoint with
//! its own handler gets it; any other endpoint gets the default handler (the reference's bare
//! `@requests`, bound to `/default`); with no default, the documents pass through unchanged.

use indexmap::IndexMap;

/// The endpoint of a handler bound with no endpoint.
pub const DEFAULT_ENDPOINT: &str = "/default";

/// One handler of an executor and where the executor's own code binds it.
#[derive(Clone, Debug, PartialEq)]
pub struct HandlerSpec {
    pub name: String,
    /// Endpoints bound by code. Empty: not bound unless a YAML binds it.
    pub on: Vec<String>,
}

impl HandlerSpec {
    /// A handler bound to every endpoint without its own (the reference's bare `@requests`).
    pub fn default(name: &str) -> Self {
        HandlerSpec {
            name: name.into(),
            on: vec![DEFAULT_ENDPOINT.into()],
        }
    }

    /// A handler bound to these endpoints (`@requests(on=[...])`).
    pub fn on(name: &str, endpoints: &[&str]) -> Self {
        HandlerSpec {
            name: name.into(),
            on: endpoints.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A handler that only a YAML `requests` entry binds.
    pub fn unbound(name: &str) -> Self {
        HandlerSpec {
            name: name.into(),
            on: vec![],
        }
    }
}

/// Endpoint → handler name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestTable {
    bindings: IndexMap<String, String>,
}

impl RequestTable {
    /// Builds the table from the code's bindings and then each layer of overrides (endpoint →
    /// handler name). A layer naming a handler the executor lacks is an error naming both.
    pub fn build<'a>(
        handlers: &[HandlerSpec],
        layers: impl IntoIterator<Item = (&'a str, &'a IndexMap<String, String>)>,
    ) -> Result<RequestTable, String> {
        let mut bindings = IndexMap::new();
        for h in handlers {
            for endpoint in &h.on {
                bindings.insert(endpoint.clone(), h.name.clone());
            }
        }
        for (layer, entries) in layers {
            for (endpoint, handler) in entries {
                if !handlers.iter().any(|h| &h.name == handler) {
                    let known: Vec<&str> = handlers.iter().map(|h| h.name.as_str()).collect();
                    return Err(format!(
                        "{layer}.{endpoint}: no handler named '{handler}' (this executor has: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
                bindings.insert(normalise(endpoint), handler.clone());
            }
        }
        Ok(RequestTable { bindings })
    }

    /// The handler for this endpoint, if any.
    pub fn resolve(&self, endpoint: &str) -> Option<&str> {
        self.bindings
            .get(endpoint)
            .or_else(|| self.bindings.get(DEFAULT_ENDPOINT))
            .map(String::as_str)
    }

    /// The endpoints this table names, in binding order.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.bindings.keys().map(String::as_str)
    }
}

/// `default` and `/default` both name the default endpoint; other endpoints are kept as given.
fn normalise(endpoint: &str) -> String {
    match endpoint {
        "default" => DEFAULT_ENDPOINT.into(),
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn uses_requests_binds_on_top_of_the_default() {
        // The reference: foo is bare @requests, bar is bound to /index by uses_requests.
        let handlers = [HandlerSpec::default("foo"), HandlerSpec::unbound("bar")];
        let over = layer(&[("/index", "bar")]);
        let t = RequestTable::build(&handlers, [("uses_requests", &over)]).unwrap();
        assert_eq!(t.resolve("/index"), Some("bar"));
        assert_eq!(t.resolve("/dummy"), Some("foo"));
    }

    #[test]
    fn no_default_means_pass_through() {
        let t = RequestTable::build(&[HandlerSpec::on("a", &["/index"])], []).unwrap();
        assert_eq!(t.resolve("/search"), None);
    }

    #[test]
    fn an_unknown_handler_names_layer_endpoint_and_handler() {
        let over = layer(&[("/x", "nope")]);
        let e =
            RequestTable::build(&[HandlerSpec::default("foo")], [("requests", &over)]).unwrap_err();
        assert_eq!(
            e,
            "requests./x: no handler named 'nope' (this executor has: foo)"
        );
    }
}
