//! A budget of bytes in flight, so that big documents cannot make a client or the gateway hold
//! more than a few requests' worth of memory, however large the input.
//!
//! Each request takes its encoded size out of the budget before it is sent on (waiting while
//! the budget is spent) and gives it back when its permit is dropped. A request larger than
//! the whole budget waits until nothing else is in flight, then goes alone.

use crate::proto::jina::DataRequestProto;
use prost::Message;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default for clients and for each gateway stream: room for a few big requests, little
/// next to a machine's memory.
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
