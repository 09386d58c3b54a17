//! Incremental runs: three batches in three runs give the lake one run over everything gives
//! (full content), and a rerun with nothing new changes nothing.

use crate::harness::*;

#[test]
fn three_batches_equal_one_run_and_rerun_is_a_noop() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let truth = generate(&sample, 6000, "mixed", 5, 3);
    let catalog = sample.join("catalog");

    let one = tmp.path().join("one");
    compact(&sample.join("staged"), &one, Some(&catalog), &[]);

    // Objects arrive in physical order, which is not key order: some land late.
    let deliveries = deliveries(&truth);
    let staged = tmp.path().join("staged");
    let inc = tmp.path().join("inc");
    let third = deliveries.len() / 3;
    let mut written = 0;
    let mut replaced = 0;
    for (i, batch) in deliveries.chunks(third + 1).enumerate() {
        copy_objects(&sample, batch, &staged);
        let r = compact(&staged, &inc, Some(&catalog), &[]);
        assert_eq!(r["committed_version"], i as u64 + 1);
        assert_eq!(r["objects"]["read"], batch.len());
        written += r["records"]["written"].as_u64().unwrap();
        replaced += r["records"]["lake_records_replaced"].as_u64().unwrap();
    }
    assert_eq!(written - replaced, truth["distinct_keys"].as_u64().unwrap());
    let expected = lake_content(&one);
    assert_eq!(
        lake_content(&inc),
        expected,
        "three incremental runs differ from one run"
    );
    // Small files do not pile up: after three runs each partition is still one Delta file.
    for table in lake_dump(&inc)["typed"].as_array().unwrap() {
        let rows = table["rows"].as_array().unwrap();
        let dates: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r["date"].as_str().unwrap()).collect();
        assert_eq!(
            table["files"].as_u64().unwrap() as usize,
            dates.len(),
            "{}",
            table["metric"]
        );
    }

    let before: Vec<_> = walk(&inc)
        .into_iter()
        .filter(|p| !p.to_str().unwrap().contains("/_runs/"))
        .collect();
    let again = compact(&staged, &inc, Some(&catalog), &[]);
    assert_eq!(again["noop"], true);
    assert_eq!(again["committed_version"], serde_json::Value::Null);
    assert_eq!(again["objects"]["already_processed"], deliveries.len());
    assert!(again["message"].as_str().unwrap().contains("nothing new"));
    let after: Vec<_> = walk(&inc)
        .into_iter()
        .filter(|p| !p.to_str().unwrap().contains("/_runs/"))
        .collect();
    assert_eq!(before, after, "a no-op run wrote lake files");
    assert_eq!(lake_content(&inc), expected);
}

#[test]
fn changed_object_is_reported_not_silently_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = testdata("fixtures/dedup");
    let staged = tmp.path().join("staged");
    let lake = tmp.path().join("lake");
    copy_tree(&fx.join("staged"), &staged);
    compact(&staged, &lake, Some(&fx.join("catalog")), &[]);
    let victim = walk(&staged).into_iter().next().unwrap();
    let mut text = std::fs::read_to_string(&victim).unwrap();
    text.push_str("{\"tenant\":\"t1\",\"metric\":\"boiler\",\"timestamp\":1767225609000}\n");
    std::fs::write(&victim, text).unwrap();
    let r = compact(&staged, &lake, Some(&fx.join("catalog")), &[]);
    let changed = r["objects"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1);
    assert!(victim
        .to_str()
        .unwrap()
        .ends_with(changed[0].as_str().unwrap()));
    assert_eq!(r["noop"], true);
}
