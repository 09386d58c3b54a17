//! Edits to a tenant catalog document, each validated before it becomes a version.
