//! DocArray's query language over one document, as Jina 3's `when:` uses it to route:
//! `{tags__lang: {$eq: en}}`, `{$or: [{text: {$regex: '^bon'}}, {tags__n: {$gte: 2}}]}`.
//!
//! A field is a path into the document's JSON form, its steps joined by `__` (`tags__lang` is
//! `tags.lang`); its condition is a map of docarray 0.40's operators (`$eq`, `$neq` (and `$ne`),
//! `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$regex`, `$size`, `$exists`), several of which
//! must all hold, or a plain value (`$eq`). `$and` and `$or` take lists of queries, `$not` a
//! query it negates (as a field's operator too, as docarray reads it); the fields of one map
//! must all hold.
//! Reading a query checks it whole, so a mistake is found when the Flow is read, not per request.

use super::Document;
use serde_json::Value;

/// A checked query, with the form it was written in (to write it back, and to compare).
#[derive(Clone, Debug)]
pub struct Query {
    source: Value,
    root: Node,
}

#[derive(Clone, Debug)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Field {
        path: Vec<String>,
        condition: Condition,
    },
}

/// What a field's value must be.
#[derive(Clone, Debug)]
enum Condition {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Regex(regex::Regex),
    /// The length of a list, an object or a text.
    Size(u64),
    Exists(bool),
}

impl PartialEq for Query {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Query {
    /// Reads a query from its JSON (or YAML) form; the error names what is wrong.
    pub fn parse(value: &Value) -> Result<Query, String> {
        Ok(Query {
            source: value.clone(),
            root: Node::parse(value)?,
        })
    }

    /// The query as it was written.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Whether `doc` satisfies the query.
    pub fn matches(&self, doc: &Document) -> bool {
        self.root.holds(&doc.to_json())
    }
}

impl Node {
    fn parse(value: &Value) -> Result<Node, String> {
        let map = value
            .as_object()
            .ok_or_else(|| format!("a query is a mapping, not {}", super::json_kind(value)))?;
        let mut all = vec![];
        for (key, v) in map {
            all.push(match key.as_str() {
                "$and" | "$or" => {
                    let items = v
                        .as_array()
                        .ok_or_else(|| format!("{key} takes a list of queries"))?;
                    let queries = items.iter().map(Node::parse).collect::<Result<_, _>>()?;
                    if key == "$and" {
                        Node::All(queries)
                    } else {
                        Node::Any(queries)
                    }
                }
                "$not" => Node::Not(Box::new(Node::parse(v)?)),
                op if op.starts_with('$') => {
                    return Err(format!(
                        "{op} is not a query operator here (use $and, $or, $not, or a field such as tags__lang)"
                    ));
                }
                field => field_query(field, v)?,
            });
        }
        Ok(match all.len() {
            1 => all.pop().expect("one"),
            _ => Node::All(all),
        })
    }

    fn holds(&self, doc: &Value) -> bool {
        match self {
            Node::All(qs) => qs.iter().all(|q| q.holds(doc)),
            Node::Any(qs) => qs.iter().any(|q| q.holds(doc)),
            Node::Not(q) => !q.holds(doc),
            Node::Field { path, condition } => {
                let value = path.iter().try_fold(doc, |v, step| v.get(step));
                condition.holds(value)
            }
        }
    }
}

fn field_query(field: &str, v: &Value) -> Result<Node, String> {
    let path: Vec<String> = field.split("__").map(str::to_string).collect();
    // docarray reads a field's `$not` as a whole query it negates.
    if let Value::Object(ops) = v
        && ops.len() == 1
        && let Some(negated) = ops.get("$not")
    {
        return Ok(Node::Not(Box::new(Node::parse(negated)?)));
    }
    let conditions: Vec<Condition> = match v {
        Value::Object(ops) if ops.keys().all(|k| k.starts_with('$')) && !ops.is_empty() => ops
            .iter()
            .map(|(op, arg)| condition(field, op, arg))
            .collect::<Result<_, _>>()?,
        plain => vec![Condition::Eq(plain.clone())],
    };
    let mut queries: Vec<Node> = conditions
        .into_iter()
        .map(|condition| Node::Field {
            path: path.clone(),
            condition,
        })
        .collect();
    Ok(match queries.len() {
        1 => queries.pop().expect("one"),
        _ => Node::All(queries),
    })
}

fn condition(field: &str, op: &str, arg: &Value) -> Result<Condition, String> {
    let list = || {
        arg.as_array()
            .cloned()
            .ok_or_else(|| format!("{field}: {op} takes a list"))
    };
    Ok(match op {
        "$eq" => Condition::Eq(arg.clone()),
        "$neq" | "$ne" => Condition::Ne(arg.clone()),
        "$gt" => Condition::Gt(arg.clone()),
        "$gte" => Condition::Gte(arg.clone()),
        "$lt" => Condition::Lt(arg.clone()),
        "$lte" => Condition::Lte(arg.clone()),
        "$in" => Condition::In(list()?),
        "$nin" => Condition::Nin(list()?),
        "$regex" => {
            let pattern = arg
                .as_str()
                .ok_or_else(|| format!("{field}: $regex takes a string"))?;
            Condition::Regex(
                regex::Regex::new(pattern).map_err(|e| format!("{field}: $regex: {e}"))?,
            )
        }
        "$size" => Condition::Size(
            arg.as_u64()
                .ok_or_else(|| format!("{field}: $size takes a whole number"))?,
        ),
        "$exists" => Condition::Exists(
            arg.as_bool()
                .ok_or_else(|| format!("{field}: $exists takes true or false"))?,
        ),
        other => {
            return Err(format!(
                "{field}: unknown operator {other} ($eq, $neq, $gt, $gte, $lt, $lte, $in, $nin, $regex, $size, $exists, $not)"
            ));
        }
    })
}

/// Equal as JSON, with numbers compared by value (1 equals 1.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The order of two values of the same kind (numbers, or strings); None across kinds.
fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl Condition {
    fn holds(&self, value: Option<&Value>) -> bool {
        use std::cmp::Ordering::*;
        let present = value.filter(|v| !v.is_null());
        match (self, present) {
            (Condition::Exists(wanted), v) => v.is_some() == *wanted,
            (Condition::Ne(arg), None) => !arg.is_null(),
            (Condition::Nin(_), None) => true,
            (_, None) => matches!(self, Condition::Eq(Value::Null)),
            (Condition::Eq(arg), Some(v)) => same(v, arg),
            (Condition::Ne(arg), Some(v)) => !same(v, arg),
            (Condition::Gt(arg), Some(v)) => order(v, arg) == Some(Greater),
            (Condition::Gte(arg), Some(v)) => matches!(order(v, arg), Some(Greater | Equal)),
            (Condition::Lt(arg), Some(v)) => order(v, arg) == Some(Less),
            (Condition::Lte(arg), Some(v)) => matches!(order(v, arg), Some(Less | Equal)),
            (Condition::In(list), Some(v)) => list.iter().any(|x| same(v, x)),
            (Condition::Nin(list), Some(v)) => !list.iter().any(|x| same(v, x)),
            (Condition::Regex(r), Some(Value::String(s))) => r.is_match(s),
            (Condition::Regex(_), Some(_)) => false,
            (Condition::Size(n), Some(v)) => {
                let length = match v {
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.len(),
                    Value::String(s) => s.chars().count(),
                    _ => return false,
                };
                length as u64 == *n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        Document::from_json(&v).unwrap()
    }

    #[test]
    fn the_operators_hold_as_docarray_defines_them() {
        let en = doc(json!({"id": "a", "text": "hello", "tags": {"lang": "en", "n": 2}}));
        let fr = doc(json!({"id": "b", "text": "bonjour", "tags": {"lang": "fr", "n": 5}}));
        let check = |q: Value, want: [bool; 2]| {
            let q = Query::parse(&q).unwrap();
            assert_eq!([q.matches(&en), q.matches(&fr)], want, "{q:?}");
        };
        check(json!({"tags__lang": {"$eq": "en"}}), [true, false]);
        check(json!({"tags__lang": "fr"}), [false, true]);
        check(json!({"tags__lang": {"$ne": "en"}}), [false, true]);
        check(json!({"tags__n": {"$gt": 2}}), [false, true]);
        check(json!({"tags__n": {"$gte": 2.0, "$lt": 5}}), [true, false]);
        check(json!({"tags__n": {"$lte": 5}}), [true, true]);
        check(json!({"tags__lang": {"$in": ["fr", "de"]}}), [false, true]);
        check(json!({"tags__lang": {"$nin": ["fr", "de"]}}), [true, false]);
        check(json!({"text": {"$regex": "^bon"}}), [false, true]);
        check(json!({"tags__missing": {"$exists": false}}), [true, true]);
        check(json!({"tags__lang": {"$exists": true}}), [true, true]);
        // docarray 0.40's own spellings: $neq, $size, $not (of a query, and as a field's).
        check(json!({"tags__lang": {"$neq": "en"}}), [false, true]);
        check(json!({"text": {"$size": 5}}), [true, false]);
        check(json!({"$not": {"tags__lang": "en"}}), [false, true]);
        check(
            json!({"tags__lang": {"$not": {"tags__n": {"$gt": 4}}}}),
            [true, false],
        );
        check(
            json!({"$or": [{"tags__lang": "en"}, {"tags__n": {"$gt": 4}}]}),
            [true, true],
        );
        check(
            json!({"$and": [{"tags__lang": "en"}, {"tags__n": {"$gt": 4}}]}),
            [false, false],
        );
    }

    #[test]
    fn a_bad_query_says_what_is_wrong() {
        let e = Query::parse(&json!({"tags__lang": {"$like": "en"}})).unwrap_err();
        assert!(e.contains("unknown operator $like"), "{e}");
        let e = Query::parse(&json!({"text": {"$regex": "("}})).unwrap_err();
        assert!(e.contains("$regex"), "{e}");
        let e = Query::parse(&json!({"$or": {"a": 1}})).unwrap_err();
        assert!(e.contains("$or takes a list"), "{e}");
    }
}
