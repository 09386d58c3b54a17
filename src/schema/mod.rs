//! Schema life cycle (SPEC 4, 10): proposals for what the catalog does not know, the
//! versioned catalog in the lake, and the edits `fineo-batch schema` makes to it.

pub mod edit;
pub mod propose;
pub mod similar;
pub mod store;
