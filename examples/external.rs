//! Add an already spawned Executor (reference: "Add an already spawned Executor"):
//! `f.add(host='localhost', port_in=12345, external=True)`. Here the executor is started by
//! `jina executor` first; the Flow connects to it and leaves it running when it stops.

use jina::executor::ExecutorFlags;
use jina::flow::{Exec, Flow};
use std::process::{Command, Stdio};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = jina::free_port()?;
    // `jina executor --uses Visit --name spawned --port-in PORT`, written by the type that
    // `jina executor` reads its flags into.
    let flags = ExecutorFlags {
        name: Some("spawned".into()),
        ..ExecutorFlags::new("Visit", port)
    };
    let mut executor = Command::new(jina::jina_binary()?)
        .arg("executor")
        .args(flags.to_args())
        .stderr(Stdio::null())
        .spawn()?;
    while jina::grpc::check_serving("127.0.0.1", port, std::time::Duration::from_millis(200))
        .await
        .is_err()
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    {
        let f = Flow::new()
            .add(
                Exec::new()
                    .name("spawned")
                    .host("localhost")
                    .port_in(port)
                    .external(true),
            )
            .start()
            .await?;
        let summary = f
            .post(
                "/",
                jina::Document::new(),
                jina::client::PostOptions {
                    return_results: true,
                    ..Default::default()
                },
            )
            .await?;
        let docs = summary.results[0].docs()?;
        println!(
            "the external executor answered: {}",
            docs.iter().next().unwrap().matches[0]
                .text
                .as_deref()
                .unwrap_or("")
        );
    }
    println!(
        "after the Flow closed, the external executor still runs: {}",
        executor.try_wait()?.is_none()
    );
    executor.kill()?;
    Ok(())
}
