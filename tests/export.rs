//! `jina export kubernetes` through the binary: the manifests parse back as typed Kubernetes
//! objects (k8s-openapi), one Deployment per executor shard and for the gateway, a Service
//! each, probes set, replica counts right, the Flow's files in a ConfigMap. (No cluster runs
//! here; `tests/docker.rs` shows the gateway balancing over a name with several addresses.)

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Service};
use std::collections::BTreeMap;

/// Every YAML document of every file in `dir`, by kind.
#[derive(Default)]
struct Objects {
    deployments: BTreeMap<String, Deployment>,
    services: BTreeMap<String, Service>,
    config_maps: Vec<ConfigMap>,
    namespaces: Vec<Namespace>,
    claims: BTreeMap<String, PersistentVolumeClaim>,
}

fn read_back(dir: &std::path::Path) -> Objects {
    use serde::Deserialize;
    let mut objects = Objects::default();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(doc).unwrap();
            let kind = value["kind"].as_str().unwrap().to_string();
            let name = value["metadata"]["name"].as_str().unwrap().to_string();
            match kind.as_str() {
                "Deployment" => {
                    objects
                        .deployments
                        .insert(name, serde_yaml_ng::from_value(value).unwrap());
                }
                "Service" => {
                    objects
                        .services
                        .insert(name, serde_yaml_ng::from_value(value).unwrap());
                }
                "ConfigMap" => objects
                    .config_maps
                    .push(serde_yaml_ng::from_value(value).unwrap()),
                "Namespace" => objects
                    .namespaces
                    .push(serde_yaml_ng::from_value(value).unwrap()),
                "PersistentVolumeClaim" => {
                    objects
                        .claims
                        .insert(name, serde_yaml_ng::from_value(value).unwrap());
                }
                other => panic!("unexpected kind {other}"),
            }
        }
    }
    objects
}

/// `jina export kubernetes FLOW DIR/k8s EXTRA...` on a Flow YAML written into `files`:
/// (exit code, output, the manifests' folder).
fn export(files: &Files, flow_yaml: &str, extra: &[&str]) -> (i32, String, std::path::PathBuf) {
    let flow = files.write("search.yml", flow_yaml);
    let out = files.dir.path().join("k8s");
    let mut args = vec![
        "export",
        "kubernetes",
        flow.to_str().unwrap(),
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let (code, said) = run(&args);
    (code, said, out)
}

#[test]
fn kubernetes_manifests_have_a_deployment_per_shard_and_parse_back_as_objects() {
    let files = Files::new();
    files.write(
        "executors/enc.yml",
        "jtype: NgramEncoder\nwith: {dim: 16}\n",
    );
    let (code, said, out) = export(
        &files,
        "jtype: Flow\nwith: {protocol: [grpc, http], port: [8080, 8081]}\nexecutors:\n  - {name: split, uses: Sentencizer, replicas: 2}\n  - {name: enc, uses: executors/enc.yml, needs: split}\n  - {name: idx, uses: VectorIndexer, needs: split, shards: 2, replicas: 3, uses_after: Visit, workspace: ws}\n  - {name: join, uses: 'docker://ranker:1', needs: [enc, idx]}\n",
        &["--k8s-namespace", "search"],
    );
    assert_eq!(code, 0, "{said}");
    let objects = read_back(&out);

    let replicas: BTreeMap<&str, i32> = objects
        .deployments
        .iter()
        .map(|(name, d)| (name.as_str(), d.spec.as_ref().unwrap().replicas.unwrap()))
        .collect();
    assert_eq!(
        replicas,
        BTreeMap::from([
            ("enc", 1),
            ("gateway", 1),
            ("idx-shard-0", 3),
            ("idx-shard-1", 3),
            ("idx-tail", 1),
            ("join", 1),
            ("split", 2),
        ])
    );
    assert_eq!(
        objects.services.keys().collect::<Vec<_>>(),
        objects.deployments.keys().collect::<Vec<_>>(),
        "a Service for each Deployment"
    );
    for (name, service) in &objects.services {
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(service.metadata.namespace.as_deref(), Some("search"));
        // Executors' Services are headless: their names resolve to every ready pod.
        let headless = spec.cluster_ip.as_deref() == Some("None");
        assert_eq!(headless, name != "gateway", "{name}");
    }
    for (name, deployment) in &objects.deployments {
        let pod = deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        let container = &pod.containers[0];
        for probe in [&container.readiness_probe, &container.liveness_probe] {
            let command = probe
                .as_ref()
                .unwrap()
                .exec
                .as_ref()
                .unwrap()
                .command
                .clone()
                .unwrap();
            assert_eq!(command[..2], ["jina", "ping"], "{name}");
        }
    }
    let container = |name: &str| {
        let spec = objects.deployments[name].spec.clone().unwrap();
        spec.template.spec.unwrap().containers[0].clone()
    };
    let image = |name: &str| container(name).image.unwrap();
    assert_eq!(image("join"), "ranker:1");
    assert_eq!(image("enc"), "jina-rs:latest");
    let args = |name: &str| container(name).args.unwrap().join(" ");
    assert_eq!(
        args("enc"),
        "executor --uses /flow/executors/enc.yml --port 8081 --name enc"
    );
    assert!(
        args("idx-shard-1").contains(r#""shard_id":1"#),
        "{}",
        args("idx-shard-1")
    );
    let gateway = args("gateway");
    assert!(
        gateway.starts_with("gateway --uses /flow/search.yml --deployments-addresses "),
        "{gateway}"
    );
    assert!(
        gateway.contains(r#""idx":{"shards":[["idx-shard-0.search.svc:8081"],["idx-shard-1.search.svc:8081"]],"tail":"idx-tail.search.svc:8081"}"#),
        "{gateway}"
    );
    // The index's workspace (the Flow gives its every copy one) is a claim of each
    // Deployment's, shared by its replicas, that the pod mounts at /workspace and whose files
    // its user's group owns; executors without a workspace have none.
    assert_eq!(
        objects.claims.keys().collect::<Vec<_>>(),
        [
            "idx-shard-0-workspace",
            "idx-shard-1-workspace",
            "idx-tail-workspace"
        ]
    );
    let claim = objects.claims["idx-shard-0-workspace"]
        .spec
        .clone()
        .unwrap();
    assert_eq!(claim.access_modes.unwrap(), ["ReadWriteMany"]);
    let pod = |name: &str| {
        objects.deployments[name]
            .spec
            .clone()
            .unwrap()
            .template
            .spec
            .unwrap()
    };
    let shard = pod("idx-shard-0");
    let volume = shard
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "workspace")
        .unwrap();
    assert_eq!(
        volume.persistent_volume_claim.unwrap().claim_name,
        "idx-shard-0-workspace"
    );
    assert_eq!(shard.security_context.unwrap().fs_group, Some(10001));
    assert!(args("idx-shard-0").contains(r#""workspace":"/workspace""#));
    let mounts = container("idx-shard-0").volume_mounts.unwrap();
    assert!(mounts.iter().any(|m| m.mount_path == "/workspace"));
    assert!(
        pod("split")
            .volumes
            .is_none_or(|v| v.iter().all(|v| v.name != "workspace"))
    );
    let data = objects.config_maps[0].data.clone().unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["executors_enc.yml", "search.yml"]
    );
    assert_eq!(
        objects.namespaces[0].metadata.name.as_deref(),
        Some("search")
    );
}

#[test]
fn what_kubernetes_cannot_run_is_an_error_naming_the_executor() {
    let (code, said, _) = export(
        &Files::new(),
        "jtype: Flow\nexecutors:\n  - {name: local, external: true, port_in: 5000}\n",
        &[],
    );
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("local: an external executor on this machine's loopback"),
        "{said}"
    );
}
