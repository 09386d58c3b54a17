//! Name similarity: is an unknown field name a likely variant of a declared one.
