//! The gateway forwards what it does not need to read ([V]): a request's documents go from
//! hop to hop as the bytes that came in, and are decoded only where something reads them (a
//! join's merge, ALL-polled shards' answers, `when:`).
//!
//! A property test over random Flows of `BaseExecutor`s (chains, fan-outs and joins; shards
//! polled ANY or ALL) and random documents (every kind of value DocArray sends, nested
//! documents, fields no schema knows): each request goes through the Flow as written, where
//! the gateway forwards, and through the same Flow with a `when:` that every document matches
//! on each executor, where the gateway decodes and encodes the documents at every hop. Both
//! answer the same documents; where nothing merged them, the answer carries the very bytes
//! the client sent. A failing case prints its seed (`JINA_FORWARDING_SEED` runs it again).

mod common;
use common::*;
use jina::proto::docarray::{
    DenseNdArrayProto, DictOfAnyProto, DocListProto, DocProto, ListOfAnyProto, NdArrayProto,
    NodeProto, node_proto::Content,
};
use jina::proto::jina::DataRequestProto;
use jina::proto::jina::data_request_proto::{DataContentProto, data_content_proto::Documents};
use prost::Message;

/// xorshift64*: enough randomness for test cases, and the same cases again from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn word(&mut self) -> String {
        let len = 1 + self.below(12) as usize;
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
}

/// One executor of a random Flow.
struct Node {
    needs: Vec<String>,
    shards: u64,
    all: bool,
}

impl Node {
    /// Whether the gateway must decode what passes here to merge it.
    fn merges(&self) -> bool {
        self.needs.len() > 1 || (self.shards > 1 && self.all)
    }
}

/// A random graph of up to four executors, each needing the gateway, the one before it, or
/// several of those before it.
fn random_flow(rng: &mut Rng) -> Vec<Node> {
    let n = 1 + rng.below(4) as usize;
    (0..n)
        .map(|i| {
            let before: Vec<String> = std::iter::once("gateway".to_string())
                .chain((0..i).map(|j| format!("e{j}")))
                .collect();
            let needs = match i == 0 || rng.chance(2) {
                true => vec![before[i].clone()],
                false => {
                    let picked: Vec<String> =
                        before.iter().filter(|_| rng.chance(2)).cloned().collect();
                    if picked.is_empty() {
                        vec![before[i].clone()]
                    } else {
                        picked
                    }
                }
            };
            Node {
                needs,
                shards: 1 + rng.below(2),
                all: rng.chance(2),
            }
        })
        .collect()
}

/// The Flow's `executors:` list; with `decoding`, each executor has a `when:` every document
/// matches, so that the gateway reads the documents at every hop.
fn executors_yaml(nodes: &[Node], decoding: bool) -> String {
    let mut yaml = String::new();
    for (i, node) in nodes.iter().enumerate() {
        let polling = if node.all { "ALL" } else { "ANY" };
        yaml += &format!(
            "  - {{name: e{i}, uses: BaseExecutor, needs: [{}], shards: {}, polling: {polling}",
            node.needs.join(", "),
            node.shards
        );
        if decoding {
            yaml += ", when: {id: {$exists: true}}";
        }
        yaml += "}\n";
    }
    yaml
}

/// Whether the gateway merges anything in this Flow: its leaves' answers, or at a node.
fn merges(nodes: &[Node]) -> bool {
    let leaves = (0..nodes.len())
        .filter(|&i| {
            let name = format!("e{i}");
            !nodes.iter().any(|n| n.needs.contains(&name))
        })
        .count();
    leaves > 1 || nodes.iter().any(Node::merges)
}

fn node(content: Content) -> NodeProto {
    NodeProto {
        content: Some(content),
        docarray_type: None,
    }
}

fn random_value(rng: &mut Rng, depth: u32) -> NodeProto {
    let kinds = if depth == 0 { 6 } else { 9 };
    match rng.below(kinds) {
        0 => node(Content::Text(rng.word())),
        1 => node(Content::Integer(rng.next() as i32)),
        2 => node(Content::Float((rng.next() % 10_000) as f64 / 7.0)),
        3 => node(Content::Boolean(rng.chance(2))),
        4 => node(Content::Blob(
            (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        )),
        5 => NodeProto::default(),
        6 => node(Content::List(ListOfAnyProto {
            data: (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        })),
        7 => node(Content::Dict(DictOfAnyProto {
            data: (0..rng.below(4))
                .map(|_| (rng.word(), random_value(rng, depth - 1)))
                .collect(),
        })),
        _ => node(Content::Tuple(ListOfAnyProto {
            data: (0..rng.below(3))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        })),
    }
}

/// A document with an id, some of DocArray's fields, nested documents, and fields of names
/// no schema has.
fn random_doc(rng: &mut Rng, id: String, depth: u32) -> DocProto {
    let mut data = std::collections::HashMap::new();
    data.insert("id".to_string(), node(Content::Text(id.clone())));
    if rng.chance(2) {
        let text = (0..rng.below(20)).map(|_| rng.word()).collect::<Vec<_>>();
        data.insert("text".to_string(), node(Content::Text(text.join(" "))));
    }
    if rng.chance(2) {
        let tags = (0..rng.below(4))
            .map(|_| (rng.word(), random_value(rng, 1)))
            .collect();
        data.insert(
            "tags".to_string(),
            node(Content::Dict(DictOfAnyProto { data: tags })),
        );
    }
    if rng.chance(3) {
        let n = 1 + rng.below(16);
        let buffer: Vec<u8> = (0..n * 4).map(|_| rng.next() as u8).collect();
        let array = NdArrayProto {
            dense: Some(DenseNdArrayProto {
                buffer: buffer.into(),
                shape: vec![n as u32],
                dtype: "<f4".into(),
            }),
            parameters: None,
        };
        let mut embedding = node(Content::Ndarray(array));
        embedding.docarray_type = Some(jina::proto::docarray::node_proto::DocarrayType::Type(
            "ndarray".into(),
        ));
        data.insert("embedding".to_string(), embedding);
    }
    if depth > 0 && rng.chance(3) {
        let chunks = (0..1 + rng.below(3))
            .map(|c| random_doc(rng, format!("{id}-{c}"), depth - 1))
            .collect();
        data.insert(
            "chunks".to_string(),
            node(Content::DocArray(DocListProto { docs: chunks })),
        );
    }
    for _ in 0..rng.below(3) {
        data.insert(format!("unknown_{}", rng.word()), random_value(rng, 2));
    }
    DocProto { data }
}

fn request_of(rng: &mut Rng, n: usize, case: u64) -> DataRequestProto {
    let docs = (0..n)
        .map(|i| random_doc(rng, format!("c{case}-d{i}"), 1))
        .collect();
    let data = DataContentProto {
        documents: Some(Documents::Docs(DocListProto { docs })),
    };
    jina::request::new_request_with_data("/index", data.encode_to_vec().into(), &Default::default())
}

/// The documents of an answer, as the wire list.
fn docs_of(answer: &DataRequestProto) -> Vec<DocProto> {
    match DataContentProto::decode(answer.data.clone())
        .expect("an answer's documents decode")
        .documents
    {
        Some(Documents::Docs(list)) => list.docs,
        Some(Documents::DocsBytes(bytes)) => DocListProto::decode(bytes).unwrap().docs,
        None => vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_and_decoded_answers_are_the_same_documents() {
    let seed = std::env::var("JINA_FORWARDING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let (mut forwarded_bytes, mut merged) = (0, 0);
    for case in 0..25 {
        let nodes = random_flow(&mut rng);
        let requests: Vec<DataRequestProto> = (0..3)
            .map(|_| {
                let n = rng.below(6) as usize;
                request_of(&mut rng, n, case)
            })
            .collect();
        let forwarding = start_flow(&executors_yaml(&nodes, false));
        let decoding = start_flow(&executors_yaml(&nodes, true));
        let context = format!(
            "seed {seed}, case {case}, executors:\n{}",
            executors_yaml(&nodes, false)
        );
        for sent in requests {
            let forwarded = post_grpc(forwarding.grpc, vec![sent.clone()]).await;
            let decoded = post_grpc(decoding.grpc, vec![sent.clone()]).await;
            let (forwarded, decoded) = (&forwarded[0], &decoded[0]);
            assert!(
                !jina::request::is_error(forwarded) && !jina::request::is_error(decoded),
                "{context}\nan answer failed: {forwarded:?} / {decoded:?}"
            );
            assert_eq!(docs_of(forwarded), docs_of(decoded), "{context}");
            if merges(&nodes) {
                merged += 1;
            } else {
                // Nothing read them: the client's own bytes came back.
                assert_eq!(forwarded.data, sent.data, "{context}");
                assert_eq!(docs_of(decoded), docs_of(&sent), "{context}");
                forwarded_bytes += 1;
            }
        }
    }
    eprintln!("seed {seed}: {forwarded_bytes} answers forwarded as sent, {merged} merged");
}
