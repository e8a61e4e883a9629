//! A Flow as Kubernetes manifests, built from k8s-openapi's typed objects so that every field
//! is one Kubernetes knows, with the type it takes.
//!
//! - Every shard of an executor is a Deployment, with the executor's `replicas` as its replica
//!   count; a uses_before / uses_after is a Deployment of one. Each has a *headless* Service
//!   (no cluster IP): its DNS name resolves to every ready pod, and the gateway spreads
//!   requests over them one by one ([`crate::grpc::balanced_channel`]). gRPC's long-lived
//!   connections then need no service mesh to spread.
//! - The gateway is a Deployment with a plain Service on the Flow's ports. It runs `jina
//!   gateway --uses /flow/FLOW.yml`, with each executor at `SERVICE.NAMESPACE.svc:8081`.
//! - The Flow's YAML, and the executor YAML files it names, are a ConfigMap mounted at
//!   `/flow` in the gateway and in native executors. A workspace is a PersistentVolumeClaim
//!   the export declares (one per Deployment), mounted at `/workspace`: an index outlives its
//!   pods.
//! - Readiness and liveness probes run `jina ping`.

use super::{
    EXECUTOR_PORT, ExportError, FLOW_DIR, copy_container, dns_name, external_address,
    flow_location, gateway_command, gateway_ping, refuse_tls,
};
use crate::flow::{CheckedFlow, ExecutorSpec};
use crate::orchestrate::{CopySpec, Role, copies_of};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, ExecAction, KeyToPath,
    Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::path::Path;

use super::WORKSPACE_DIR;

/// What a workspace claim asks for; edit the manifest for a bigger index.
const WORKSPACE_SIZE: &str = "1Gi";
/// The image's user (see Dockerfile): the claim's files are its group's, so it can write.
const IMAGE_GROUP: i64 = 10001;

/// Choices the Flow YAML does not make.
#[derive(Clone, Debug)]
pub(crate) struct KubernetesOptions {
    /// The project's image, for the gateway and native executors.
    pub image: String,
    /// The namespace of every object; None: the Flow's name.
    pub namespace: Option<String>,
}

/// One file of the export: its name in the output folder and its YAML documents.
#[derive(Debug)]
pub(crate) struct Manifest {
    pub file: String,
    pub yaml: String,
}

/// The manifests of `flow`, read from `flow_file` (an absolute path).
pub(crate) fn to_kubernetes(
    flow: &CheckedFlow,
    flow_file: &Path,
    options: &KubernetesOptions,
) -> Result<Vec<Manifest>, ExportError> {
    let (folder, file_name) = flow_location(flow_file)?;
    refuse_tls(&flow.spec)?;
    let flow_name = dns_name(flow.spec.gateway.name.as_deref().unwrap_or_else(|| {
        Path::new(&file_name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("flow")
    }));
    let mut export = Export {
        flow,
        folder,
        options,
        namespace: options
            .namespace
            .clone()
            .unwrap_or_else(|| flow_name.clone()),
        files_map: format!("{flow_name}-files"),
        flow_name,
        files: BTreeMap::from([(file_name.clone(), read(flow_file)?)]),
        addresses: serde_json::Map::new(),
        pending: vec![],
    };
    for i in 0..flow.spec.executors.len() {
        export.executor(i)?;
    }
    // Every file is known now: each executor's objects, with the files volume complete.
    let mut manifests: Vec<Manifest> = export
        .pending
        .iter()
        .map(|p| export.executor_manifest(p))
        .collect();
    manifests.push(export.gateway_manifest(&file_name));
    manifests.push(export.files_manifest());
    if let Some(namespace) = export.namespace_manifest() {
        manifests.insert(0, namespace);
    }
    Ok(manifests)
}

/// One export under way: what is known so far of the Flow's objects.
struct Export<'a> {
    flow: &'a CheckedFlow,
    /// The Flow's folder, whose files the pods mount.
    folder: &'a Path,
    options: &'a KubernetesOptions,
    namespace: String,
    flow_name: String,
    /// The ConfigMap of the Flow's files.
    files_map: String,
    /// The Flow's files that some pod reads: path in the folder → text.
    files: BTreeMap<String, String>,
    /// Where the gateway finds each executor.
    addresses: serde_json::Map<String, serde_json::Value>,
    pending: Vec<Pending>,
}

impl Export<'_> {
    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(name, &self.flow_name)),
            ..Default::default()
        }
    }

    /// Plans the Deployments of executor `i` (replicas of a shard are one Deployment, its
    /// first copy standing for all of them) and notes where the gateway finds them.
    fn executor(&mut self, i: usize) -> Result<(), ExportError> {
        let exec = &self.flow.spec.executors[i];
        let name = self.flow.spec.name_of(i);
        if let Some(address) = external_address(exec, &name)? {
            self.addresses.insert(name, address.into());
            return Ok(());
        }
        let mut shards = vec![String::new(); exec.shards as usize];
        let (mut head, mut tail) = (None, None);
        let firsts = copies_of(exec, &name, &self.flow.served[i])
            .into_iter()
            .filter(|c| c.id.replica == 0 || !matches!(c.role, Role::Copy { .. }));
        for mut copy in firsts {
            if let Role::Copy { .. } = copy.role {
                copy.label = crate::orchestrate::CopyId {
                    replicas: 1,
                    ..copy.id
                }
                .label(&name);
            }
            let pending = self.pod(exec, &copy)?;
            let address = format!("{}.{}.svc:{EXECUTOR_PORT}", pending.name, self.namespace);
            match copy.role {
                Role::Copy { shard } => shards[shard as usize] = address,
                Role::Head => head = Some(address),
                Role::Tail => tail = Some(address),
            }
            self.pending.push(pending);
        }
        // One name per shard: the gateway finds its replicas behind it.
        let shards: Vec<Vec<String>> = shards.into_iter().map(|a| vec![a]).collect();
        let mut at = serde_json::json!({"shards": shards});
        if let Some(h) = head {
            at["head"] = h.into();
        }
        if let Some(t) = tail {
            at["tail"] = t.into();
        }
        self.addresses.insert(name, at);
        Ok(())
    }

    /// The pod of one copy (and the files it reads, noted).
    fn pod(&mut self, exec: &ExecutorSpec, copy: &CopySpec) -> Result<Pending, ExportError> {
        let container = copy_container(
            &self.flow.spec,
            exec,
            copy,
            self.folder,
            &self.options.image,
            |_| Some(WORKSPACE_DIR.to_string()),
        )?;
        if container.reads_flow_files
            && let Some(file) = executor_file(&container.args, self.folder)
        {
            self.files
                .insert(file.clone(), read(&self.folder.join(&file))?);
        }
        let mut mounts = vec![];
        if container.reads_flow_files {
            mounts.push(mount("flow-files", FLOW_DIR));
        }
        if container.workspace.is_some() {
            mounts.push(mount("workspace", WORKSPACE_DIR));
        }
        let pod = Container {
            name: "executor".into(),
            image: Some(container.image),
            command: container.entrypoint,
            args: Some(container.args),
            env: Some(env(&container.env)),
            ports: Some(vec![container_port("grpc", EXECUTOR_PORT)]),
            readiness_probe: Some(probe(&executor_ping(), 2)),
            liveness_probe: Some(probe(&executor_ping(), 10)),
            volume_mounts: (!mounts.is_empty()).then_some(mounts),
            ..Default::default()
        };
        Ok(Pending {
            name: dns_name(&copy.label),
            pod,
            replicas: match copy.role {
                Role::Copy { .. } => exec.replicas,
                Role::Head | Role::Tail => 1,
            },
            reads_flow_files: container.reads_flow_files,
            workspace: container.workspace.is_some(),
        })
    }

    /// An executor's Deployment and its headless Service.
    fn executor_manifest(&self, p: &Pending) -> Manifest {
        let mut volumes = vec![];
        if p.reads_flow_files {
            volumes.push(files_volume(&self.files_map, &self.files));
        }
        let claim = p.workspace.then(|| self.workspace_claim(p));
        if let Some(claim) = &claim {
            volumes.push(Volume {
                name: "workspace".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.metadata.name.clone().unwrap_or_default(),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
        let mut deployment = deployment(self.meta(&p.name), p.replicas, p.pod.clone(), volumes);
        if claim.is_some()
            && let Some(pod) = deployment
                .spec
                .as_mut()
                .and_then(|d| d.template.spec.as_mut())
        {
            pod.security_context = Some(PodSecurityContext {
                fs_group: Some(IMAGE_GROUP),
                ..Default::default()
            });
        }
        let service = Service {
            metadata: self.meta(&p.name),
            spec: Some(ServiceSpec {
                // Headless: the name resolves to every ready pod, for the gateway to spread.
                cluster_ip: Some("None".into()),
                selector: Some(selector(&p.name)),
                ports: Some(vec![service_port("grpc", EXECUTOR_PORT)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut objects = vec![];
        if let Some(claim) = &claim {
            objects.push(to_yaml(claim));
        }
        objects.extend([to_yaml(&deployment), to_yaml(&service)]);
        Manifest {
            file: format!("{}.yml", p.name),
            yaml: documents(&objects),
        }
    }

    /// The claim of a Deployment's workspace: its replicas share it, as a Flow's copies share
    /// a folder, so several of them need a volume many nodes can mount.
    fn workspace_claim(&self, p: &Pending) -> PersistentVolumeClaim {
        let access = match p.replicas {
            1 => "ReadWriteOnce",
            _ => "ReadWriteMany",
        };
        PersistentVolumeClaim {
            metadata: self.meta(&format!("{}-workspace", p.name)),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![access.into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(WORKSPACE_SIZE.into()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The gateway's Deployment and Service: `jina gateway --uses` the Flow's file, with
    /// every executor's address.
    fn gateway_manifest(&self, file_name: &str) -> Manifest {
        let spec = &self.flow.spec;
        let (command, ports) = gateway_command(spec, file_name, self.addresses.clone());
        let ping = gateway_ping(spec, &ports);
        let protocols = &spec.gateway.protocols;
        let gateway = Container {
            name: "gateway".into(),
            image: Some(self.options.image.clone()),
            args: Some(command),
            env: Some(env(&BTreeMap::from([(
                "JINA_PORT".to_string(),
                ports[0].to_string(),
            )]))),
            ports: Some(
                protocols
                    .iter()
                    .zip(&ports)
                    .map(|(p, port)| container_port(p.as_str(), *port))
                    .collect(),
            ),
            readiness_probe: ping.as_ref().map(|p| probe(p, 2)),
            liveness_probe: ping.as_ref().map(|p| probe(p, 10)),
            volume_mounts: Some(vec![mount("flow-files", FLOW_DIR)]),
            ..Default::default()
        };
        let gateway_deployment = deployment(
            self.meta("gateway"),
            1,
            gateway,
            vec![files_volume(&self.files_map, &self.files)],
        );
        let gateway_service = Service {
            metadata: self.meta("gateway"),
            spec: Some(ServiceSpec {
                selector: Some(selector("gateway")),
                ports: Some(
                    protocols
                        .iter()
                        .zip(&ports)
                        .map(|(p, port)| service_port(p.as_str(), *port))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        Manifest {
            file: "gateway.yml".into(),
            yaml: documents(&[to_yaml(&gateway_deployment), to_yaml(&gateway_service)]),
        }
    }

    /// The ConfigMap of the Flow's files. Its keys are flat: each file gets one, and its path
    /// under /flow back.
    fn files_manifest(&self) -> Manifest {
        let config_map = ConfigMap {
            metadata: self.meta(&self.files_map),
            data: Some(
                self.files
                    .iter()
                    .map(|(path, text)| (file_key(path), text.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        Manifest {
            file: "flow-files.yml".into(),
            yaml: documents(&[to_yaml(&config_map)]),
        }
    }

    /// The namespace, unless it is `default`.
    fn namespace_manifest(&self) -> Option<Manifest> {
        if self.namespace == "default" {
            return None;
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                labels: Some(labels(&self.namespace, &self.flow_name)),
                ..Default::default()
            },
            ..Default::default()
        };
        Some(Manifest {
            file: "namespace.yml".into(),
            yaml: documents(&[to_yaml(&ns)]),
        })
    }
}

/// An executor's Deployment and Service, once the Flow's files are all known.
struct Pending {
    name: String,
    pod: Container,
    replicas: u32,
    reads_flow_files: bool,
    workspace: bool,
}

/// The ConfigMap of the Flow's files as a volume: each file back at the path it had in the
/// Flow's folder (ConfigMap keys are flat).
fn files_volume(config_map: &str, files: &BTreeMap<String, String>) -> Volume {
    Volume {
        name: "flow-files".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            items: Some(
                files
                    .keys()
                    .map(|path| KeyToPath {
                        key: file_key(path),
                        path: path.clone(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A file's path as a ConfigMap key (letters, digits, `-`, `_`, `.`).
fn file_key(path: &str) -> String {
    path.chars()
        .map(|c| match c.is_ascii_alphanumeric() || "-_.".contains(c) {
            true => c,
            false => '_',
        })
        .collect()
}

/// The executor YAML a native copy reads, relative to the Flow's folder.
fn executor_file(args: &[String], folder: &Path) -> Option<String> {
    let uses = args.get(2)?;
    let relative = uses.strip_prefix(&format!("{FLOW_DIR}/"))?;
    folder
        .join(relative)
        .is_file()
        .then(|| relative.to_string())
}

fn read(path: &Path) -> Result<String, ExportError> {
    std::fs::read_to_string(path).map_err(|e| ExportError::Unsupported {
        executor: path.display().to_string(),
        why: format!("cannot read it: {e}"),
    })
}

fn labels(name: &str, flow: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), name.to_string()),
        ("app.kubernetes.io/part-of".into(), flow.into()),
        ("app.kubernetes.io/managed-by".into(), "jina-rs".into()),
    ])
}

fn selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), name.to_string())])
}

fn deployment(
    metadata: ObjectMeta,
    replicas: u32,
    container: Container,
    volumes: Vec<Volume>,
) -> Deployment {
    let name = metadata.name.clone().unwrap_or_default();
    Deployment {
        spec: Some(DeploymentSpec {
            replicas: Some(replicas as i32),
            selector: LabelSelector {
                match_labels: Some(selector(&name)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: metadata.labels.clone(),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        metadata,
        ..Default::default()
    }
}

fn executor_ping() -> Vec<String> {
    vec!["executor".into(), format!("127.0.0.1:{EXECUTOR_PORT}")]
}

/// A probe running `jina ping ARGS` every `period` seconds.
fn probe(ping: &[String], period: i32) -> Probe {
    let mut command = vec!["jina".to_string(), "ping".into()];
    command.extend(ping.iter().cloned());
    Probe {
        exec: Some(ExecAction {
            command: Some(command),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn env(vars: &BTreeMap<String, String>) -> Vec<EnvVar> {
    vars.iter()
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            ..Default::default()
        })
        .collect()
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port.into(),
        ..Default::default()
    }
}

fn service_port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: port.into(),
        target_port: Some(IntOrString::Int(port.into())),
        ..Default::default()
    }
}

/// A typed object as YAML, with its `apiVersion` and `kind`.
fn to_yaml<K: k8s_openapi::Resource + serde::Serialize>(object: &K) -> String {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    value["apiVersion"] = K::API_VERSION.into();
    value["kind"] = K::KIND.into();
    serde_yaml_ng::to_string(&value).unwrap_or_default()
}

fn documents(docs: &[String]) -> String {
    docs.join("---\n")
}
