//! The versioned catalog in the lake (`<lake>/_catalog/<tenant>/v<N>.json`), written with conditional puts.
