//! A hook that records the path of every write and delete (put, multipart, copy target,
//! delete) a store serves, for tenant-isolation checks.

use std::sync::{Arc, Mutex};

use fineo_batch::storage::Location;

use crate::fault_store::{tap, Hook, Req};

/// What a request did to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Multipart,
    Copy,
    Delete,
}

/// Records writes and deletes of the wrapped store.
#[derive(Debug, Default)]
pub struct RecordingStore {
    log: Mutex<Vec<(Op, String)>>,
}

impl Hook for RecordingStore {
    fn before(&self, req: Req<'_>) -> object_store::Result<()> {
        let noted = match req {
            Req::Put(p) => Some((Op::Put, p)),
            Req::Multipart(p) => Some((Op::Multipart, p)),
            Req::Copy(p) => Some((Op::Copy, p)),
            Req::Delete(p) => Some((Op::Delete, p)),
            Req::DeleteStream | Req::Get | Req::List => None,
        };
        if let Some((op, path)) = noted {
            self.log.lock().unwrap().push((op, path.to_string()));
        }
        Ok(())
    }
}

impl RecordingStore {
    /// `loc` over a recording store, and the recording.
    pub fn wrap(loc: &Location) -> (Location, Arc<RecordingStore>) {
        tap(loc, RecordingStore::default())
    }

    /// Every recorded write and delete, in order.
    pub fn recorded(&self) -> Vec<(Op, String)> {
        self.log.lock().unwrap().clone()
    }
}
