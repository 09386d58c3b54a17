//! Schema proposals: per tenant and metric, statistics of unknown fields and metrics and of declared fields that fail their type, merged across runs, with suggestions.
