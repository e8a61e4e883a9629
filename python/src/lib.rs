//! `jina_rs._native`: jina-rs's executor server inside a Python process, calling a user's Jina
//! executor.
//!
//! This crate owns the crossing between the two languages: documents (DocArray v2's wire form,
//! which the server decodes, to and from Python values that the user's schema validates),
//! calls made with the interpreter's lock, and a Python exception as the error status Jina
//! shows. What the executor is and how its handlers are called is the Python side's
//! (`jina_rs/_host.py`); how requests are served is the jina crate's (`HostedExecutor`). The
//! server runs with the lock released; calls into the user's code run one at a time, at once
//! on the server's thread when the executor is idle, else on the copy's Python thread (see
//! `Lane`).

use futures::future::BoxFuture;
use jina::Document;
use jina::executor::{
    Answer, BoxError, DynamicBatching, HandlerError, HostedExecutor, HostedLoad, OwnedCall,
    Parameters, WireDocs,
};
use jina::proto::docarray::{
    DenseNdArrayProto, DictOfAnyProto, DocListProto, DocProto, ListOfAnyProto, NdArrayProto,
    NodeProto, node_proto,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple,
};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Serves the executor that `host` builds, with `jina executor`'s flags `argv`, until Ctrl-C
/// or SIGTERM; returns the exit status.
#[pyfunction]
fn serve(py: Python<'_>, argv: Vec<String>, host: Py<PyAny>) -> u8 {
    py.detach(move || {
        jina::cli::serve_hosted(argv.into_iter().map(Into::into).collect(), |load| {
            Python::attach(|py| PythonExecutor::load(py, host, load))
                .map(|e| Arc::new(e) as Arc<dyn HostedExecutor>)
        })
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    Ok(())
}

/// The user's executor: what the server asks of it, and the queue of its Python thread.
struct PythonExecutor {
    python: Arc<Loaded>,
    lane: Arc<Lane>,
    bindings: Vec<(String, Vec<String>)>,
    streams: Vec<bool>,
    batching: Vec<(String, DynamicBatching)>,
    schemas: Vec<Option<Value>>,
}

/// The executor as `jina_rs._host.Loaded` holds it, and the Python types the conversion must
/// recognise.
struct Loaded {
    loaded: Py<PyAny>,
    types: Types,
}

/// Python types and helpers, looked up once.
struct Types {
    base_doc: Py<PyAny>,
    doc_list: Py<PyAny>,
    ndarray: Py<PyAny>,
    /// `ndarray(buffer, dtype, shape)`: a writable numpy array.
    make_ndarray: Py<PyAny>,
}

impl PythonExecutor {
    fn load(py: Python<'_>, host: Py<PyAny>, load: HostedLoad) -> Result<PythonExecutor, BoxError> {
        let request = PyDict::new(py);
        let workspace = load.workspace.as_ref().map(|w| w.display().to_string());
        let copy = load.copy;
        let items: [(&str, Py<PyAny>); 10] = [
            ("jtype", load.jtype.into_pyobject(py)?.into_any().unbind()),
            (
                "py_modules",
                load.py_modules.into_pyobject(py)?.into_any().unbind(),
            ),
            ("with", json_to_py(py, &Value::Object(load.with))?),
            ("metas", json_to_py(py, &Value::Object(load.metas))?),
            ("name", load.name.into_pyobject(py)?.into_any().unbind()),
            (
                "workspace",
                workspace.into_pyobject(py)?.into_any().unbind(),
            ),
            (
                "shard_id",
                copy.shard_id.into_pyobject(py)?.into_any().unbind(),
            ),
            ("shards", copy.shards.into_pyobject(py)?.into_any().unbind()),
            (
                "replica_id",
                copy.replica_id.into_pyobject(py)?.into_any().unbind(),
            ),
            (
                "replicas",
                copy.replicas.into_pyobject(py)?.into_any().unbind(),
            ),
        ];
        for (key, value) in items {
            request.set_item(key, value)?;
        }
        request.set_item("origin", load.origin)?;
        let loaded = host
            .bind(py)
            .call_method1("load", (request,))
            .map_err(|e| -> BoxError { e.value(py).to_string().into() })?;
        let bindings: Vec<(String, Vec<String>)> = loaded.getattr("bindings")?.extract()?;
        let streams: Vec<bool> = loaded.getattr("streams")?.extract()?;
        let batching: Vec<(String, usize, u64)> = loaded.getattr("batching")?.extract()?;
        let schemas = loaded
            .getattr("schemas")?
            .try_iter()?
            .map(|schema| py_to_json(&schema?).map(|s| (!s.is_null()).then_some(s)))
            .collect::<PyResult<_>>()?;
        let types = Types {
            base_doc: host.getattr(py, "BaseDoc")?,
            doc_list: host.getattr(py, "AnyDocArray")?,
            ndarray: host.getattr(py, "ndarray_type")?,
            make_ndarray: host.getattr(py, "make_ndarray")?,
        };
        let python = Arc::new(Loaded {
            loaded: loaded.unbind(),
            types,
        });
        Ok(PythonExecutor {
            python,
            lane: python_thread()?,
            bindings,
            streams,
            batching: batching
                .into_iter()
                .map(|(endpoint, preferred_batch_size, timeout)| {
                    (
                        endpoint,
                        DynamicBatching {
                            preferred_batch_size,
                            timeout,
                        },
                    )
                })
                .collect(),
            schemas,
        })
    }

    /// Runs `step` in the executor's turn (see [`Lane::run`]); the receiver gets what it
    /// sends back.
    fn on_python<T: Send + 'static>(
        &self,
        step: impl FnOnce(Python<'_>, &Loaded, Reply<T>) -> Pending + Send + 'static,
    ) -> tokio::sync::oneshot::Receiver<Result<T, HandlerError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let python = self.python.clone();
        // If the Python thread is gone, the job is dropped, and the dropped reply says so.
        self.lane.run(Box::new(move |py| step(py, &python, reply)));
        answer
    }

    /// [`PythonExecutor::on_python`], waiting here for the answer (off the server's runtime).
    fn on_python_blocking<T: Send + 'static>(
        &self,
        step: impl FnOnce(Python<'_>, &Loaded, Reply<T>) -> Pending + Send + 'static,
    ) -> Result<T, HandlerError> {
        self.on_python(step)
            .blocking_recv()
            .unwrap_or_else(|_| Err(python_gone()))
    }
}

fn python_gone() -> HandlerError {
    HandlerError::new("RuntimeError", "the executor's Python thread stopped")
}

/// Where a job sends its outcome.
type Reply<T> = tokio::sync::oneshot::Sender<Result<T, HandlerError>>;

/// Work for the Python thread, run with the interpreter's lock.
type Job = Box<dyn FnOnce(Python<'_>) -> Pending + Send>;

/// What a job left to do: nothing, or a coroutine (an `async def` handler's) to await, and
/// what to do with its outcome.
enum Pending {
    Done,
    Awaiting {
        coroutine: Py<PyAny>,
        finish: Finish,
    },
}

/// What is done with an awaited coroutine's outcome.
type Finish = Box<dyn FnOnce(Python<'_>, PyResult<Bound<'_, PyAny>>) + Send>;

/// How long the executor stays idle before the copy's free memory goes back.
const IDLE: Duration = Duration::from_millis(200);

/// A job that took longer than this sends the next one to the Python thread: a server thread
/// may not be held longer than a small request takes (tokio's threads serve every connection).
const INLINE_UNDER: Duration = Duration::from_micros(500);

/// The executor's turn to run Python code, and the jobs waiting for it.
///
/// Handlers run one at a time, as Python Jina's worker runs them (its executor lock). A job
/// that finds the executor idle, nothing queued and the last job quick runs at once on the
/// thread that has it (a server thread): handing it to another thread and the answer back
/// was most of what the host added to a small request. Otherwise it is queued for the copy's
/// Python thread, which takes the interpreter's lock once for all that waits and runs the
/// coroutines of `async def` handlers queued together on its event loop. Whoever runs a job
/// holds the turn before it takes the interpreter's lock, never the other way round.
struct Lane {
    state: Mutex<LaneState>,
    /// Wakes the Python thread: jobs queued, the turn given back, or the executor dropped.
    wake: Condvar,
    /// The last job took longer than [`INLINE_UNDER`].
    slow: AtomicBool,
}

#[derive(Default)]
struct LaneState {
    queued: VecDeque<Job>,
    /// A job is running (the executor's turn is taken).
    busy: bool,
    /// A job ran since the Python thread last looked: memory may be there to give back.
    used: bool,
    /// The Python thread waits with no time-out (memory given back): an inline job wakes it.
    asleep: bool,
    /// The executor is gone: the Python thread ends once the queue is empty.
    closed: bool,
}

impl Lane {
    fn state(&self) -> MutexGuard<'_, LaneState> {
        // A job runs outside the lock, so a poisoned lock still holds consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `job` now on this thread if the executor is idle, else queues it (drops it if
    /// the Python thread is gone: its reply then says so).
    fn run(&self, job: Job) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        if state.busy || !state.queued.is_empty() || self.slow.load(Relaxed) {
            state.queued.push_back(job);
            self.wake.notify_one();
            return;
        }
        state.busy = true;
        drop(state);
        // Given back however the job ends, a panic included.
        let _turn = Turn(self);
        let started = Instant::now();
        let pending = Python::attach(job);
        self.slow.store(started.elapsed() > INLINE_UNDER, Relaxed);
        if let Pending::Awaiting { .. } = pending {
            // A coroutine is awaited on the Python thread's event loop, first of what waits.
            self.state().queued.push_front(Box::new(move |_| pending));
        }
    }

    /// For the Python thread, without the interpreter's lock: waits for the turn and the jobs
    /// queued, and takes them all (None once the executor is gone). Memory goes back once
    /// the executor has been idle for [`IDLE`].
    fn next_jobs(&self) -> Option<Vec<Job>> {
        let mut state = self.state();
        loop {
            if !state.busy && !state.queued.is_empty() {
                state.busy = true;
                return Some(state.queued.drain(..).collect());
            }
            if state.closed && state.queued.is_empty() {
                return None;
            }
            if state.used {
                state.used = false;
                let (next, waited) = self
                    .wake
                    .wait_timeout(state, IDLE)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state = next;
                if waited.timed_out() && !state.used && state.queued.is_empty() {
                    drop(state);
                    jina::allocator::give_back_free_memory();
                    state = self.state();
                }
            } else {
                state.asleep = true;
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.asleep = false;
            }
        }
    }

    /// The jobs that held the turn have run: it is free again.
    fn give_back(&self) {
        let mut state = self.state();
        state.busy = false;
        state.used = true;
        if !state.queued.is_empty() || state.asleep {
            self.wake.notify_one();
        }
    }

    fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }
}

/// The executor's turn, held by an inline job: given back when dropped.
struct Turn<'a>(&'a Lane);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

/// Held by the Python thread: however it ends, what is queued is dropped (each job's reply
/// then says the thread is gone) and nothing more is queued.
struct ThreadEnds(Arc<Lane>);

impl Drop for ThreadEnds {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.closed = true;
        state.busy = false;
        let queued = std::mem::take(&mut state.queued);
        drop(state);
        drop(queued);
    }
}

impl Drop for PythonExecutor {
    fn drop(&mut self) {
        self.lane.close();
    }
}

/// Starts the copy's Python thread, which runs the jobs queued on the lane it returns.
fn python_thread() -> std::io::Result<Arc<Lane>> {
    let lane = Arc::new(Lane {
        state: Mutex::new(LaneState::default()),
        wake: Condvar::new(),
        slow: AtomicBool::new(false),
    });
    let queue = lane.clone();
    std::thread::Builder::new()
        .name("python".into())
        .spawn(move || {
            let _ends = ThreadEnds(queue.clone());
            Python::attach(|py| {
                while let Some(jobs) = py.detach(|| queue.next_jobs()) {
                    let mut awaiting = vec![];
                    for job in jobs {
                        let started = Instant::now();
                        if let Pending::Awaiting { coroutine, finish } = job(py) {
                            awaiting.push((coroutine, finish));
                        }
                        queue.slow.store(started.elapsed() > INLINE_UNDER, Relaxed);
                    }
                    if !awaiting.is_empty() {
                        await_all(py, awaiting);
                    }
                    queue.give_back();
                }
            })
        })?;
    Ok(lane)
}

/// Runs the coroutines together on the thread's event loop and hands each its outcome.
fn await_all(py: Python<'_>, awaiting: Vec<(Py<PyAny>, Finish)>) {
    let (coroutines, finishes): (Vec<_>, Vec<_>) = awaiting.into_iter().unzip();
    let outcomes = py
        .import("jina_rs._host")
        .and_then(|host| host.getattr("gather"))
        .and_then(|gather| gather.call1((coroutines,)))
        .and_then(|list| list.extract::<Vec<Bound<'_, PyAny>>>());
    match outcomes {
        Ok(outcomes) => {
            for (outcome, finish) in outcomes.into_iter().zip(finishes) {
                match outcome.is_instance_of::<pyo3::exceptions::PyBaseException>() {
                    true => finish(py, Err(PyErr::from_value(outcome))),
                    false => finish(py, Ok(outcome)),
                }
            }
        }
        Err(e) => {
            for finish in finishes {
                finish(py, Err(e.clone_ref(py)));
            }
        }
    }
}

impl HostedExecutor for PythonExecutor {
    fn bindings(&self) -> Vec<(String, Vec<String>)> {
        self.bindings.clone()
    }

    fn batching(&self) -> Vec<(String, DynamicBatching)> {
        self.batching.clone()
    }

    fn streams(&self, index: usize) -> bool {
        self.streams.get(index).copied().unwrap_or(false)
    }

    fn endpoint_schema(&self, index: usize) -> Option<Value> {
        self.schemas.get(index).cloned().flatten()
    }

    fn call(
        &self,
        index: usize,
        call: OwnedCall<WireDocs>,
    ) -> BoxFuture<'static, Result<Answer<WireDocs>, HandlerError>> {
        let OwnedCall {
            docs,
            docs_matrix: matrix,
            sources,
            parameters,
            endpoint,
        } = call;
        let sent = Arc::new(docs);
        let fields = sent.clone();
        let answer = self.on_python(move |py, python, reply| {
            let started = (|| -> PyResult<Bound<'_, PyAny>> {
                let types = &python.types;
                let fields = docs_to_py(py, types, &fields)?;
                let matrix = match &matrix {
                    Some(rows) => {
                        let list = PyList::empty(py);
                        for row in rows {
                            list.append(docs_to_py(py, types, row)?)?;
                        }
                        list.into_any()
                    }
                    None => py.None().into_bound(py),
                };
                let parameters = json_to_py(py, &Value::Object(parameters))?;
                python.loaded.bind(py).call_method1(
                    "call",
                    (index, fields, matrix, sources, parameters, endpoint),
                )
            })();
            let python = python.clone_for(py);
            let finish = move |py: Python<'_>, outcome: PyResult<Bound<'_, PyAny>>| {
                let answer = outcome
                    .and_then(|answer| read_answer(&python.types, &answer))
                    .map_err(|e| handler_error(py, e));
                let _ = reply.send(answer);
            };
            match started {
                Ok(answer) if is_coroutine(&answer) => Pending::Awaiting {
                    coroutine: answer.unbind(),
                    finish: Box::new(finish),
                },
                outcome => {
                    finish(py, outcome);
                    Pending::Done
                }
            }
        });
        Box::pin(async move {
            let (out, results) = answer.await.unwrap_or_else(|_| Err(python_gone()))?;
            Ok(Answer {
                docs: Some(keep_unknown_fields(&sent, out)),
                results,
            })
        })
    }

    fn call_stream(
        &self,
        index: usize,
        doc: Document,
        parameters: &Parameters,
        endpoint: &str,
        emit: &mut dyn FnMut(Document) -> bool,
    ) -> Result<(), HandlerError> {
        let proto = doc.to_proto();
        let parameters = parameters.clone();
        let endpoint = endpoint.to_string();
        let generator = self.on_python_blocking(move |py, python, reply| {
            let started = (|| -> PyResult<Py<PyAny>> {
                let fields = doc_fields_to_py(py, &python.types, &proto)?;
                let parameters = json_to_py(py, &Value::Object(parameters))?;
                Ok(python
                    .loaded
                    .bind(py)
                    .call_method1("stream", (index, fields, parameters, endpoint))?
                    .unbind())
            })();
            let _ = reply.send(started.map_err(|e| handler_error(py, e)));
            Pending::Done
        })?;
        let generator = Arc::new(generator);
        loop {
            // One item at a time on the Python thread; sent on from here.
            let next = generator.clone();
            let item = self.on_python_blocking(move |py, python, reply| {
                let item = match next.bind(py).call_method0("__next__") {
                    Ok(item) => doc_from_py(&python.types, &item).map(Some),
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => Ok(None),
                    Err(e) => Err(e),
                };
                let _ = reply.send(item.map_err(|e| handler_error(py, e)));
                Pending::Done
            })?;
            let Some(proto) = item else { return Ok(()) };
            if !emit(Document::from_proto(proto)) {
                let _ = self.on_python_blocking(move |py, _, reply| {
                    let closed = generator.bind(py).call_method0("close").map(drop);
                    let _ = reply.send(closed.map_err(|e| handler_error(py, e)));
                    Pending::Done
                });
                return Ok(());
            }
        }
    }

    fn close(&self) {
        let closed = self.on_python_blocking(|py, python, reply| {
            let closed = python.loaded.bind(py).call_method0("close").map(drop);
            let _ = reply.send(closed.map_err(|e| handler_error(py, e)));
            Pending::Done
        });
        if let Err(error) = closed {
            eprintln!("close() failed: {}: {}", error.name, error.message);
        }
    }
}

impl Loaded {
    /// The same objects, owned anew (for a closure that outlives this borrow).
    fn clone_for(&self, py: Python<'_>) -> Loaded {
        Loaded {
            loaded: self.loaded.clone_ref(py),
            types: Types {
                base_doc: self.types.base_doc.clone_ref(py),
                doc_list: self.types.doc_list.clone_ref(py),
                ndarray: self.types.ndarray.clone_ref(py),
                make_ndarray: self.types.make_ndarray.clone_ref(py),
            },
        }
    }
}

/// Whether a handler's answer is a coroutine still to be awaited (an `async def` handler's).
fn is_coroutine(value: &Bound<'_, PyAny>) -> bool {
    value.hasattr("__await__").unwrap_or(false) && !value.is_instance_of::<PyTuple>()
}

/// What `Loaded.call` answers, `(documents, results)`, in the wire form.
fn read_answer(
    types: &Types,
    answer: &Bound<'_, PyAny>,
) -> PyResult<(Vec<DocProto>, Option<Value>)> {
    let (out, results): (Bound<PyAny>, Bound<PyAny>) = answer.extract()?;
    let out = docs_from_py(types, &out)?;
    let results = match results.is_none() {
        true => None,
        false => Some(py_to_json(&results)?),
    };
    Ok((out, results))
}

/// A Python exception as the error Jina's status shows: its class name, its message and its
/// traceback's lines.
fn handler_error(py: Python<'_>, e: PyErr) -> HandlerError {
    {
        let name = e
            .get_type(py)
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".into());
        let message = e.value(py).to_string();
        let description = e.value(py).repr().map(|r| r.to_string()).ok();
        let stacks = py
            .import("traceback")
            .and_then(|tb| {
                let trace = e
                    .traceback(py)
                    .map(|t| t.into_any())
                    .unwrap_or(py.None().into_bound(py));
                tb.call_method1("format_exception", (e.get_type(py), e.value(py), trace))
            })
            .and_then(|lines| lines.extract::<Vec<String>>())
            .unwrap_or_default();
        let error = HandlerError::new(name, message).with_stacks(stacks);
        match description {
            Some(description) => error.with_description(description),
            None => error,
        }
    }
}

/// Documents out keep the fields their schema did not know, from the document they came from
/// (same position and id): Python Jina drops them; a Flow of ours must not lose data.
fn keep_unknown_fields(sent: &[DocProto], out: Vec<DocProto>) -> WireDocs {
    out.into_iter()
        .enumerate()
        .map(|(i, mut proto)| {
            if let Some(before) = sent.get(i)
                && same_id(before, &proto)
            {
                for (key, node) in &before.data {
                    // Most fields came back: look before copying the key.
                    if !proto.data.contains_key(key) {
                        proto.data.insert(key.clone(), node.clone());
                    }
                }
            }
            proto
        })
        .collect()
}

fn same_id(a: &DocProto, b: &DocProto) -> bool {
    let id = |d: &DocProto| match d.data.get("id").and_then(|n| n.content.as_ref()) {
        Some(node_proto::Content::Text(t)) => Some(t.clone()),
        _ => None,
    };
    id(a).is_some() && id(a) == id(b)
}

// ---- DocArray's wire form to Python values ----

fn docs_to_py<'py>(
    py: Python<'py>,
    types: &Types,
    docs: &[DocProto],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for doc in docs {
        list.append(doc_fields_to_py(py, types, doc)?)?;
    }
    Ok(list)
}

/// A document as a dict of its fields, for the user's schema to validate.
fn doc_fields_to_py<'py>(
    py: Python<'py>,
    types: &Types,
    doc: &DocProto,
) -> PyResult<Bound<'py, PyDict>> {
    let fields = PyDict::new(py);
    for (key, node) in &doc.data {
        fields.set_item(key, node_to_py(py, types, node)?)?;
    }
    Ok(fields)
}

fn node_to_py<'py>(
    py: Python<'py>,
    types: &Types,
    node: &NodeProto,
) -> PyResult<Bound<'py, PyAny>> {
    use node_proto::Content;
    let list_of = |items: &ListOfAnyProto| -> PyResult<Vec<Bound<'py, PyAny>>> {
        items
            .data
            .iter()
            .map(|n| node_to_py(py, types, n))
            .collect()
    };
    Ok(match &node.content {
        None => py.None().into_bound(py),
        Some(Content::Text(s)) => PyString::new(py, s).into_any(),
        Some(Content::Integer(i)) => i.into_pyobject(py)?.into_any(),
        Some(Content::Float(f)) => f.into_pyobject(py)?.into_any(),
        Some(Content::Boolean(b)) => PyBool::new(py, *b).to_owned().into_any(),
        Some(Content::Blob(b)) => PyBytes::new(py, b).into_any(),
        Some(Content::Ndarray(array)) => {
            let dense = array.dense.clone().unwrap_or_default();
            types.make_ndarray.bind(py).call1((
                PyByteArray::new(py, &dense.buffer),
                dense.dtype,
                PyTuple::new(py, dense.shape)?,
            ))?
        }
        Some(Content::Doc(doc)) => doc_fields_to_py(py, types, doc)?.into_any(),
        Some(Content::DocArray(docs)) => docs_to_py(py, types, &docs.docs)?.into_any(),
        Some(Content::List(items)) => PyList::new(py, list_of(items)?)?.into_any(),
        Some(Content::Tuple(items)) => PyTuple::new(py, list_of(items)?)?.into_any(),
        Some(Content::Set(items)) => PySet::new(py, list_of(items)?)?.into_any(),
        Some(Content::Dict(dict)) => {
            let out = PyDict::new(py);
            for (key, value) in &dict.data {
                out.set_item(key, node_to_py(py, types, value)?)?;
            }
            out.into_any()
        }
    })
}

// ---- Python values to DocArray's wire form, as DocArray writes them ----

fn docs_from_py(types: &Types, docs: &Bound<'_, PyAny>) -> PyResult<Vec<DocProto>> {
    docs.try_iter()?
        .map(|doc| doc_from_py(types, &doc?))
        .collect()
}

/// A document (a `BaseDoc`) as its wire form: each field of its schema, by name.
fn doc_from_py(types: &Types, doc: &Bound<'_, PyAny>) -> PyResult<DocProto> {
    let py = doc.py();
    if !doc.is_instance(types.base_doc.bind(py))? {
        return Err(PyValueError::new_err(format!(
            "a handler returned {} where a document (a BaseDoc) was expected",
            doc.get_type().name()?
        )));
    }
    let fields = doc.getattr("__dict__")?;
    let fields = fields.cast::<PyDict>()?;
    let mut data = HashMap::with_capacity(fields.len());
    for (key, value) in fields.iter() {
        let key: String = key.extract()?;
        let node = value_to_node(types, &value)
            .map_err(|e| PyValueError::new_err(format!("field `{key}`: {e}")))?;
        data.insert(key, node);
    }
    Ok(DocProto {
        data: data.into_iter().collect(),
    })
}

fn node(content: node_proto::Content, docarray_type: Option<String>) -> NodeProto {
    NodeProto {
        content: Some(content),
        docarray_type: docarray_type.map(node_proto::DocarrayType::Type),
    }
}

/// A docarray type's name on the wire (`id`, `ndarray`, `image_url`): its `_proto_type_name`.
fn proto_type_name(value: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    // Looked up without raising: an AttributeError per plain value would cost more than the
    // rest of its conversion.
    Ok(match value.get_type().getattr_opt("_proto_type_name")? {
        Some(name) => name.extract().ok(),
        None => None,
    })
}

fn value_to_node(types: &Types, value: &Bound<'_, PyAny>) -> PyResult<NodeProto> {
    use node_proto::Content;
    let py = value.py();
    let list = |items: &Bound<'_, PyAny>| -> PyResult<ListOfAnyProto> {
        Ok(ListOfAnyProto {
            data: items
                .try_iter()?
                .map(|item| value_to_node(types, &item?))
                .collect::<PyResult<_>>()?,
        })
    };
    if value.is_none() {
        return Ok(NodeProto::default());
    }
    // bool before int: Python's bool is an int.
    if value.is_instance_of::<PyBool>() {
        return Ok(node(Content::Boolean(value.extract()?), None));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(node(Content::Integer(value.extract()?), None));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(node(Content::Float(value.extract()?), None));
    }
    if value.is_exact_instance_of::<PyString>() {
        return Ok(node(Content::Text(value.extract()?), None));
    }
    if value.is_instance_of::<PyString>() {
        let kind = proto_type_name(value)?;
        return Ok(node(Content::Text(value.extract()?), kind));
    }
    if value.is_instance_of::<PyBytes>() {
        return Ok(node(Content::Blob(bytes_of(value)?), None));
    }
    if value.is_instance(types.ndarray.bind(py))? {
        let kind = proto_type_name(value)?.unwrap_or_else(|| "ndarray".into());
        let dense = DenseNdArrayProto {
            buffer: bytes_of(&value.call_method0("tobytes")?)?,
            shape: value.getattr("shape")?.extract()?,
            dtype: value.getattr("dtype")?.getattr("str")?.extract()?,
        };
        let array = NdArrayProto {
            dense: Some(dense),
            parameters: None,
        };
        return Ok(node(Content::Ndarray(array), Some(kind)));
    }
    if value.is_instance(types.base_doc.bind(py))? {
        return Ok(node(Content::Doc(doc_from_py(types, value)?), None));
    }
    if value.is_instance(types.doc_list.bind(py))? {
        let docs = DocListProto {
            docs: docs_from_py(types, value)?,
        };
        return Ok(node(Content::DocArray(docs), None));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut data = HashMap::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            let key: String = key
                .extract()
                .map_err(|_| PyValueError::new_err("only text keys can be sent"))?;
            data.insert(key, value_to_node(types, &item)?);
        }
        return Ok(node(
            Content::Dict(DictOfAnyProto {
                data: data.into_iter().collect(),
            }),
            None,
        ));
    }
    if value.is_instance_of::<PyList>() {
        return Ok(node(Content::List(list(value)?), None));
    }
    if value.is_instance_of::<PyTuple>() {
        return Ok(node(Content::Tuple(list(value)?), None));
    }
    if value.is_instance_of::<PySet>() || value.is_instance_of::<PyFrozenSet>() {
        return Ok(node(Content::Set(list(value)?), None));
    }
    Err(PyValueError::new_err(format!(
        "{} cannot be sent (DocArray's wire form takes text, numbers, bytes, arrays, documents, lists and dicts)",
        value.get_type().name()?
    )))
}

/// The bytes of a Python `bytes`.
fn bytes_of(value: &Bound<'_, PyAny>) -> PyResult<bytes::Bytes> {
    Ok(value.cast::<PyBytes>()?.as_bytes().to_vec().into())
}

// ---- JSON (parameters, results, with:) ----

fn json_to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any().unbind(),
            (None, Some(f)) => f.into_pyobject(py)?.into_any().unbind(),
            (None, None) => py.None(),
        },
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, json_to_py(py, item)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

fn py_to_json(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if value.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(match value.extract::<i64>() {
            Ok(i) => Value::from(i),
            Err(_) => Value::from(value.extract::<f64>()?),
        });
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(
            serde_json::Number::from_f64(value.extract()?).map_or(Value::Null, Value::Number)
        );
    }
    if value.is_instance_of::<PyString>() {
        return Ok(Value::String(value.extract()?));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (key, item) in dict.iter() {
            map.insert(key.str()?.to_string(), py_to_json(&item)?);
        }
        return Ok(Value::Object(map));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        return value
            .try_iter()?
            .map(|item| py_to_json(&item?))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    Err(PyValueError::new_err(format!(
        "a handler's result of type {} cannot be sent (results are JSON: dict, list, text, numbers)",
        value.get_type().name()?
    )))
}
