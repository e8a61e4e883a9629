//! Big documents in bounded memory: 2 GB of tensors streamed through a Flow of two executors.
//! Every process's peak RSS must stay under a bound set by the size of one request, not by the
//! total: the client and the gateway keep only a budget of bytes in flight.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

const ROWS: usize = 3_400;
const ROW_BYTES: usize = 224 * 224 * 3 * 4;
const REQUEST_SIZE: usize = 10;

/// Writes a `.npy` of ROWS float32 tensors of 224x224x3 (2 GB), one row at a time, to `out`
/// (the client's stdin: nothing touches the disk).
fn write_npy(out: impl Write) {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({ROWS}, 224, 224, 3), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut file = std::io::BufWriter::new(out);
    file.write_all(b"\x93NUMPY\x01\x00").unwrap();
    file.write_all(&(header.len() as u16).to_le_bytes())
        .unwrap();
    file.write_all(header.as_bytes()).unwrap();
    let row: Vec<u8> = (0..ROW_BYTES / 4)
        .flat_map(|i| ((i % 251) as f32 / 251.0).to_le_bytes())
        .collect();
    for _ in 0..ROWS {
        file.write_all(&row).unwrap();
    }
    file.flush().unwrap();
}

/// The peak resident memory of a live process, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap()
        / 1024.0
}

#[test]
fn two_gigabytes_of_tensors_stream_through_a_flow_in_flat_memory() {
    let flow = start_flow("  - {name: first, uses: Sleep}\n  - {name: second, uses: Sleep}\n");
    let total_mb = (ROWS * ROW_BYTES) as f64 / 1e6;

    // Reaped by wait4 below, which also gives its peak RSS.
    #[allow(clippy::zombie_processes)]
    let client = Command::new(JINA)
        .args(["client", "post", "/index", "--port", &flow.grpc.to_string()])
        .args(["--inputs", "-", "--input-format", "npy"])
        .args([
            "--request-size",
            &REQUEST_SIZE.to_string(),
            "--show-progress",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait4 gives the client's own peak RSS once it has exited.
    let pid = client.id() as i32;
    let stdin = client.stdin.unwrap();
    let writer = std::thread::spawn(move || write_npy(stdin));
    let mut stderr = client.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    // SAFETY: wait4 on our own child, with structs it only writes.
    let (status, client_peak_mb) = unsafe {
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::wait4(pid, &mut status, 0, &mut usage), pid);
        (status, usage.ru_maxrss as f64 / 1024.0)
    };
    writer.join().unwrap();
    let out = reader.join().unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{out}"
    );
    assert!(
        out.contains(&format!("({ROWS} docs)")) && out.contains(", 0 failed"),
        "{out}"
    );

    // The bound: a base for the program itself, plus room for a few dozen requests; the total
    // streamed is more than ten times that.
    let request_mb = (REQUEST_SIZE * ROW_BYTES) as f64 / 1e6;
    let bound_mb = 64.0 + 20.0 * request_mb;
    assert!(total_mb > 10.0 * bound_mb);
    let gateway = flow.proc.child.id();
    let mut peaks = vec![
        ("client".to_string(), client_peak_mb),
        ("gateway".into(), peak_rss_mb(gateway)),
    ];
    for child in children_of(gateway) {
        peaks.push((format!("executor {child}"), peak_rss_mb(child)));
    }
    assert_eq!(peaks.len(), 4, "{peaks:?}");
    eprintln!(
        "peak RSS (MB) streaming {total_mb:.0} MB in requests of {request_mb:.1} MB: {peaks:?}"
    );
    for (who, peak) in &peaks {
        assert!(
            *peak < bound_mb,
            "{who}: peak RSS {peak:.0} MB over {bound_mb:.0} MB: {peaks:?}"
        );
    }
}
