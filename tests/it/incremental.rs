//! Incremental runs: three batches in three runs give the lake one run over everything gives
//! (full content), and a rerun with nothing new changes nothing; on a local directory and S3.

use crate::harness::*;

fn three_batches_equal_one_run_and_rerun_is_a_noop(backend: Backend) {
    let site = Site::new(backend);
    let sample = site.scratch().join("sample");
    let truth = generate(&sample, 6000, "mixed", 5, 3);
    let catalog = sample.join("catalog");

    let all = site.put_tree(&sample.join("staged"), "all");
    compact(&all, site.url("one"), Some(&catalog), &[]);

    // Objects arrive in physical order, which is not key order: some land late.
    let deliveries = deliveries(&truth);
    let staged = site.url("staged");
    let inc = site.url("inc");
    let third = deliveries.len() / 3;
    let mut written = 0;
    let mut replaced = 0;
    for (i, batch) in deliveries.chunks(third + 1).enumerate() {
        site.put_objects(&sample, batch, "staged");
        let r = compact(&staged, &inc, Some(&catalog), &[]);
        assert_eq!(r["committed_version"], i as u64 + 1);
        assert_eq!(r["objects"]["read"], batch.len());
        written += r["records"]["written"].as_u64().unwrap();
        replaced += r["records"]["lake_records_replaced"].as_u64().unwrap();
    }
    assert_eq!(written - replaced, truth["distinct_keys"].as_u64().unwrap());
    let expected = lake_content(&site.local("one"));
    assert_eq!(
        lake_content(&site.local("inc")),
        expected,
        "three incremental runs differ from one run"
    );
    // Small files do not pile up: a partition holds a typed file per window of its day, plus
    // those of each append or tail rewrite since it was last written whole (at most
    // MAX_APPENDS), and the Delta tables hold exactly those.
    let windows = (86_400_000 / fineo_batch::write::encoder::TYPED_WINDOW_MS) as u32;
    let local = site.local("inc");
    let mut manifest_files = 0;
    for index in walk(&local.join("_fineo/index")) {
        let bytes = std::fs::read(&index).unwrap().into();
        let (m, ..) = fineo_batch::write::index::footer_facts(s(&index), &bytes).unwrap();
        assert!(
            m.appends <= fineo_batch::ops::compact::MAX_APPENDS,
            "{index:?}"
        );
        assert!(
            m.typed.len() as u32 <= windows * (m.appends + 1),
            "{index:?}: {m:?}"
        );
        manifest_files += m.typed.len() as u64;
    }
    let delta_files: u64 = lake_dump(&local)["typed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["files"].as_u64().unwrap())
        .sum();
    assert_eq!(delta_files, manifest_files);

    let files = |lake: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        walk(lake)
            .into_iter()
            .filter(|p| !p.to_str().unwrap().contains("/_runs/"))
            .map(|p| {
                (
                    p.strip_prefix(lake).unwrap().into(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    let before = files(&site.local("inc"));
    let again = compact(&staged, &inc, Some(&catalog), &[]);
    assert_eq!(again["noop"], true);
    assert_eq!(again["committed_version"], serde_json::Value::Null);
    assert!(again["message"].as_str().unwrap().contains("nothing new"));
    // The rerun listed only the hours from its watermark; a reconcile lists them all.
    assert!(again["objects"]["listed_after"].is_string(), "{again}");
    assert!(again["objects"]["listed"].as_u64().unwrap() < deliveries.len() as u64);
    let again = compact(&staged, &inc, Some(&catalog), &["--reconcile"]);
    assert_eq!(again["noop"], true);
    assert_eq!(again["objects"]["already_processed"], deliveries.len());
    let after = files(&site.local("inc"));
    assert!(before == after, "a no-op run wrote lake files");
    assert_eq!(lake_content(&site.local("inc")), expected);
}
crate::both_backends! { fn three_batches_equal_one_run_and_rerun_is_a_noop; }

fn changed_object_is_reported_not_silently_skipped(backend: Backend) {
    let site = Site::new(backend);
    let fx = testdata("fixtures/dedup");
    let staged_dir = site.scratch().join("staged-src");
    copy_tree(&fx.join("staged"), &staged_dir);
    let staged = site.put_tree(&staged_dir, "staged");
    let lake = site.url("lake");
    compact(&staged, &lake, Some(&fx.join("catalog")), &[]);
    // Only the victim is written again, with one more line.
    let victim = walk(&staged_dir).into_iter().next().unwrap();
    let rel = victim.strip_prefix(&staged_dir).unwrap();
    let changed_dir = site.scratch().join("changed");
    let mut text = std::fs::read_to_string(&victim).unwrap();
    text.push_str("{\"tenant\":\"t1\",\"metric\":\"boiler\",\"timestamp\":1767225609000}\n");
    std::fs::create_dir_all(changed_dir.join(rel).parent().unwrap()).unwrap();
    std::fs::write(changed_dir.join(rel), text).unwrap();
    site.put_tree(&changed_dir, "staged");
    let r = compact(&staged, &lake, Some(&fx.join("catalog")), &[]);
    let changed = r["objects"]["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1);
    assert!(victim
        .to_str()
        .unwrap()
        .ends_with(changed[0].as_str().unwrap()));
    assert_eq!(r["noop"], true);
}
crate::both_backends! { fn changed_object_is_reported_not_silently_skipped; }
