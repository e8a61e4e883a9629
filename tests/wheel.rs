//! The Python wheel, as a Python user gets it: `deploy/build-wheel` builds it (maturin, from
//! PyPI), `pip install` puts it into a fresh venv with no Python Jina, and the venv's `jina`
//! runs a Flow that the venv's `jina client` posts to.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = text_of(&out);
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

#[test]
fn pip_install_of_the_wheel_gives_the_jina_command_and_it_runs_a_flow() {
    let files = Files::new();
    let wheels = files.dir.path().join("wheels");
    // The debug build the other tests run: quick, and the same code.
    sh(
        &format!("{ROOT}/deploy/build-wheel"),
        &[wheels.to_str().unwrap(), "--profile", "dev"],
    );
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("a wheel");
    let venv = files.dir.path().join("venv");
    sh("python3", &["-m", "venv", venv.to_str().unwrap()]);
    let pip = venv.join("bin/pip");
    // The wheel needs nothing from an index.
    sh(
        pip.to_str().unwrap(),
        &["install", "--quiet", "--no-index", wheel.to_str().unwrap()],
    );
    let python = venv.join("bin/python");
    let no_jina = Command::new(&python)
        .args(["-c", "import jina"])
        .output()
        .unwrap();
    assert!(!no_jina.status.success(), "Python Jina is not in this venv");

    let jina = venv.join("bin/jina");
    let jina = jina.to_str().unwrap();
    assert!(sh(jina, &["--version"]).contains("jina"));
    let port = free_port().to_string();
    let flow_yaml = files.write(
        "flow.yml",
        &format!(
            "jtype: Flow\nwith: {{port: {port}}}\nexecutors:\n  - {{name: visit, uses: Visit}}\n"
        ),
    );
    let flow = Command::new(jina)
        .args(["flow", "--uses", flow_yaml.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
            let _ = self.0.wait();
        }
    }
    let _flow = Stop(flow);
    let inputs = files.write("in.jsonl", "{\"text\": \"from pip\"}\n");
    let mut answer = String::new();
    let ready = eventually(Duration::from_secs(30), || {
        let out = Command::new(jina)
            .args(["client", "post", "/", "--port", &port, "--inputs"])
            .arg(&inputs)
            .args(["--output", "-"])
            .output()
            .unwrap();
        answer = text_of(&out);
        out.status.success()
    });
    assert!(ready, "{answer}");
    assert!(answer.contains("from pip"), "{answer}");
    assert!(answer.contains("visit"), "the executor saw it: {answer}");
}
