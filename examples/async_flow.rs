//! Asynchronous Flow (reference: "Asynchronous Flow"): async inputs, answers as an async
//! stream, and a Flow running next to other async work.

use futures::StreamExt;
use jina::client::{Inputs, PostOptions};
use jina::executor::{BoxError, Call, Executor, HandlerError, Metas, NoArgs, Requests};
use jina::flow::{Exec, Flow};
use std::time::{Duration, Instant};

struct HeavyWork;

impl Executor for HeavyWork {
    const NAME: &'static str = "HeavyWork";
    type Args = NoArgs;

    fn new(_: NoArgs, _: &Metas) -> Result<Self, BoxError> {
        Ok(HeavyWork)
    }

    fn requests(r: &mut Requests<Self>) {
        r.default(Self::foo);
    }
}

impl HeavyWork {
    fn foo(&self, _: Call<'_>) -> Result<(), HandlerError> {
        std::thread::sleep(Duration::from_secs(1));
        Ok(())
    }
}

async fn async_inputs() -> Inputs {
    Inputs::stream(futures::stream::iter(0..10).then(|_| async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        jina::Document::new()
    }))
}

async fn run_async_flow() -> Result<(), Box<dyn std::error::Error>> {
    let f = Flow::new()
        .add(Exec::new().uses_type::<HeavyWork>())
        .start()
        .await?;
    let mut answers = f.post_stream(
        "/",
        async_inputs().await,
        &PostOptions {
            request_size: 5,
            ..Default::default()
        },
    );
    while let Some(resp) = answers.next().await {
        println!("{}", resp?);
    }
    Ok(())
}

async fn heavylifting() {
    println!("heavylifting other io-bound jobs, e.g. download, upload, file io");
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("heavylifting done after 1s");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let (flow, ()) = tokio::join!(run_async_flow(), heavylifting());
    flow?;
    println!(
        "both done in {:.1}s, not the sum",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
