//! A budget of bytes in flight, so that big documents cannot make a process hold more than a
//! few requests' worth of memory, however large the input: a client's (its requests' encoded
//! size) and each server process's ([`Admission`]: what its requests take once read, see
//! `cost.rs`).
//!
//! Each request takes its bytes out of the budget (waiting while the budget is spent) and gives
//! them back when its permit is dropped. A client's request larger than the whole budget waits
//! until nothing else is in flight, then goes alone; a server refuses one ([`ByteBudget::fits`]).

use crate::proto::jina::DataRequestProto;
use prost::Message;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default for clients: room for a few big requests, little next to a machine's memory.
pub const DEFAULT_IN_FLIGHT_BYTES: usize = 16 << 20;

/// Counted in KiB so that a budget of gigabytes fits a semaphore's permits.
const UNIT: usize = 1024;

/// How many bytes of requests may be in flight at once: a request waits for room before it is read.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    total: u32,
}

impl ByteBudget {
    /// A budget of `bytes` (0: no limit).
    pub fn new(bytes: usize) -> ByteBudget {
        let total = match bytes {
            0 => Semaphore::MAX_PERMITS.min(u32::MAX as usize) as u32,
            b => b.div_ceil(UNIT).clamp(1, u32::MAX as usize) as u32,
        };
        ByteBudget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// The whole budget, in bytes (a budget of 0 bytes has no limit).
    pub fn total_bytes(&self) -> usize {
        self.total as usize * UNIT
    }

    /// Refuses `needed` bytes that could never fit, however long they waited.
    pub fn fits(&self, needed: usize) -> Result<(), super::OverLimit> {
        match needed > self.total_bytes() {
            true => Err(super::OverLimit::Memory {
                needed,
                budget: self.total_bytes(),
            }),
            false => Ok(()),
        }
    }

    /// Waits until `bytes` fit and takes them; refuses at once what could never fit.
    pub async fn admit_within(
        &self,
        bytes: usize,
    ) -> Result<OwnedSemaphorePermit, super::OverLimit> {
        self.fits(bytes)?;
        Ok(self.admit_bytes(bytes).await)
    }

    /// Takes `bytes` more for `permit` if they are free now: growing never waits, so two
    /// requests that each hold part of the budget cannot wait for each other.
    pub fn try_grow(&self, permit: &mut OwnedSemaphorePermit, bytes: usize) -> bool {
        let units = bytes.div_ceil(UNIT).min(u32::MAX as usize) as u32;
        match self.permits.clone().try_acquire_many_owned(units) {
            Ok(more) => {
                permit.merge(more);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits until `request` fits, and takes its size; dropping the permit gives it back.
    pub async fn admit(&self, request: &DataRequestProto) -> OwnedSemaphorePermit {
        self.admit_bytes(request.encoded_len()).await
    }

    /// Waits until `bytes` fit, and takes them; dropping the permit gives them back.
    pub async fn admit_bytes(&self, bytes: usize) -> OwnedSemaphorePermit {
        let units = bytes.div_ceil(UNIT).clamp(1, self.total as usize) as u32;
        self.permits
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the budget is never closed")
    }
}

/// What one process admits: requests of at most `max_docs` documents each, and no more
/// requests at once than its budget of memory holds (see [`super::Weight`]).
#[derive(Clone, Debug)]
pub struct Admission {
    pub max_docs: Option<usize>,
    pub budget: ByteBudget,
}

impl Admission {
    /// `max_docs` documents per request and `in_flight_bytes` of requests at once (0: no limit).
    pub fn new(max_docs: usize, in_flight_bytes: usize) -> Admission {
        Admission {
            max_docs: (max_docs > 0).then_some(max_docs),
            budget: ByteBudget::new(in_flight_bytes),
        }
    }

    /// Admits requests whose documents are `parts` (a request's `data`, or a join's), each
    /// within `max_docs`, for what they will take: their bytes twice (as received and as
    /// answered) and, when they are to be `decoded`, the cost of their documents and values.
    /// `arrived` is the room taken for them as they came off the wire (see
    /// `grpc::AdmitMessages`): it is grown to the estimate if the budget has room now, and
    /// otherwise given back while the whole estimate is waited for (never waiting while
    /// holding). Bytes that cannot be weighed are admitted at their size: decoding them fails
    /// soon after.
    pub async fn admit_decoded(
        &self,
        parts: &[&[u8]],
        decoded: bool,
        arrived: Option<OwnedSemaphorePermit>,
    ) -> Result<OwnedSemaphorePermit, super::OverLimit> {
        let bytes: usize = parts.iter().map(|p| p.len()).sum();
        let mut needed = bytes.saturating_mul(2);
        if decoded {
            let mut total = super::Weight::default();
            for part in parts {
                let Ok(weight) = super::weigh(part) else {
                    continue;
                };
                self.check_docs(weight.docs)?;
                total.docs += weight.docs;
                total.values += weight.values;
            }
            needed = total.decoded_bytes(needed);
        }
        self.admit_more(arrived, needed).await
    }

    /// Holds room for `needed` bytes: `held` if it is enough, grown if the budget has room
    /// now, else given back and `needed` waited for; refused if it could never fit.
    pub async fn admit_more(
        &self,
        held: Option<OwnedSemaphorePermit>,
        needed: usize,
    ) -> Result<OwnedSemaphorePermit, super::OverLimit> {
        self.budget.fits(needed)?;
        if let Some(mut held) = held {
            let have = held.num_permits() * UNIT;
            if have >= needed || self.budget.try_grow(&mut held, needed - have) {
                return Ok(held);
            }
        }
        Ok(self.budget.admit_bytes(needed).await)
    }

    /// Refuses `docs` documents over `max_docs`.
    pub fn check_docs(&self, docs: usize) -> Result<(), super::OverLimit> {
        match self.max_docs {
            Some(limit) if docs > limit => Err(super::OverLimit::Docs { found: docs, limit }),
            _ => Ok(()),
        }
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(
            super::DEFAULT_MAX_REQUEST_DOCS,
            super::DEFAULT_MAX_IN_FLIGHT_BYTES,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Document, DocumentArray};

    fn request_of(bytes: usize) -> DataRequestProto {
        let docs = DocumentArray::from(vec![Document::from_text("x".repeat(bytes))]);
        crate::request::new_request("/", &docs, &Default::default())
    }

    #[tokio::test]
    async fn a_request_waits_until_earlier_ones_give_their_room_back() {
        let budget = ByteBudget::new(100 * 1024);
        let first = budget.admit(&request_of(60 * 1024)).await;
        let next = request_of(60 * 1024);
        let second = budget.admit(&next);
        tokio::pin!(second);
        assert!(
            futures::poll!(second.as_mut()).is_pending(),
            "120 KiB do not fit in 100"
        );
        drop(first);
        let _second = second.await;
        // Bigger than the whole budget: it goes alone.
        let big = request_of(500 * 1024);
        let huge =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.admit(&big)).await;
        assert!(huge.is_err(), "waits while another is in flight");
    }
}
