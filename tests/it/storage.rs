//! Locations on both backends: the conditional create that every atomic step of a run rests
//! on (If-None-Match on S3) has exactly one winner, also when many race for the same key.

use fineo_batch::storage::Created;

use crate::harness::*;

fn conditional_create_has_exactly_one_winner(backend: Backend) {
    let site = Site::new(backend);
    let loc = site.location("cc");
    block_on(async {
        let first = loc.put_create("a/k.json", "one".into()).await.unwrap();
        assert_eq!(first, Created::Yes);
        let second = loc.put_create("a/k.json", "two".into()).await.unwrap();
        assert_eq!(second, Created::AlreadyExists);
        assert_eq!(loc.get_opt("a/k.json").await.unwrap().unwrap(), "one");
        let racers = (0..8).map(|i| {
            let loc = loc.clone();
            tokio::spawn(async move {
                let bytes = format!("racer {i}");
                (i, loc.put_create("race.json", bytes.into()).await.unwrap())
            })
        });
        let results = futures::future::join_all(racers).await;
        let winners: Vec<usize> = results
            .into_iter()
            .map(|r| r.unwrap())
            .filter(|(_, c)| *c == Created::Yes)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        let kept = loc.get_opt("race.json").await.unwrap().unwrap();
        assert_eq!(kept, format!("racer {}", winners[0]));
    });
}
crate::both_backends! { fn conditional_create_has_exactly_one_winner; }
