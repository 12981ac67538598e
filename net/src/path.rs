//! Onion paths: a guard and two relays, how they are chosen, and their strikes.

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::Rng;
use session_proto::onion::Hop;

use super::snode::Snode;

/// An onion path: guard first, then two relays. The hops' onion keys are prepared once.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    pub(crate) id: u64,
    pub(crate) nodes: [Snode; 3],
    pub(crate) hops: [Hop; 3],
    pub(crate) strikes: u32,
}

impl Path {
    pub(crate) fn new(id: u64, nodes: [Snode; 3]) -> Path {
        let hops = nodes.clone().map(|n| Hop::new(n.x25519, n.ed25519));
        Path {
            id,
            nodes,
            hops,
            strikes: 0,
        }
    }

    pub(crate) fn guard(&self) -> &Snode {
        &self.nodes[0]
    }

    pub(crate) fn contains(&self, ed25519: &[u8; 32]) -> bool {
        self.nodes.iter().any(|n| &n.ed25519 == ed25519)
    }
}

/// Picks two relays for `guard` from `candidates`: never the guard or a node in `exclude`;
/// with `distinct_subnets`, the three hops are in three different /24s. Nodes in `in_use`
/// (other paths) are avoided while enough others exist. `None` when the candidates don't allow
/// a path.
pub(crate) fn choose_relays(
    rng: &mut impl Rng,
    guard: &Snode,
    candidates: &[Snode],
    exclude: &HashSet<[u8; 32]>,
    in_use: &HashSet<[u8; 32]>,
    distinct_subnets: bool,
) -> Option<[Snode; 2]> {
    let mut pool: Vec<&Snode> = candidates
        .iter()
        .filter(|n| n.ed25519 != guard.ed25519 && !exclude.contains(&n.ed25519))
        .collect();
    pool.shuffle(rng);
    // Fresh nodes first, then nodes other paths use.
    pool.sort_by_key(|n| in_use.contains(&n.ed25519));
    let mut chosen: Vec<&Snode> = Vec::with_capacity(2);
    let mut subnets = vec![guard.subnet24()];
    for n in pool {
        if chosen.iter().any(|c| c.ed25519 == n.ed25519) {
            continue;
        }
        if distinct_subnets && subnets.contains(&n.subnet24()) {
            continue;
        }
        subnets.push(n.subnet24());
        chosen.push(n);
        if chosen.len() == 2 {
            return Some([chosen[0].clone(), chosen[1].clone()]);
        }
    }
    None
}

/// Picks a path for a request to `destination`: a random one not containing it, preferring
/// paths not in `tried`. Returns the path's index.
pub(crate) fn pick_path(
    rng: &mut impl Rng,
    paths: &[Path],
    destination: Option<&[u8; 32]>,
    tried: &HashSet<u64>,
) -> Option<usize> {
    let usable: Vec<usize> = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| destination.is_none_or(|d| !p.contains(d)))
        .map(|(i, _)| i)
        .collect();
    let fresh: Vec<usize> = usable
        .iter()
        .copied()
        .filter(|i| !tried.contains(&paths[*i].id))
        .collect();
    if fresh.is_empty() {
        usable.choose(rng).copied()
    } else {
        fresh.choose(rng).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snode::testing::node;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn keys(nodes: &[Snode]) -> HashSet<[u8; 32]> {
        nodes.iter().map(|n| n.ed25519).collect()
    }

    #[test]
    fn relays_are_distinct_and_in_other_subnets() {
        let mut rng = StdRng::seed_from_u64(1);
        let guard = node(1, 1);
        let candidates: Vec<Snode> = (1..=12).map(|i| node(i, i % 4)).collect();
        for _ in 0..200 {
            let [a, b] = choose_relays(
                &mut rng,
                &guard,
                &candidates,
                &HashSet::new(),
                &HashSet::new(),
                true,
            )
            .expect("enough subnets");
            assert_ne!(a.ed25519, b.ed25519);
            assert_ne!(a.ed25519, guard.ed25519);
            let subnets: HashSet<_> = [guard.subnet24(), a.subnet24(), b.subnet24()].into();
            assert_eq!(subnets.len(), 3);
        }
    }

    #[test]
    fn subnet_rule_can_be_relaxed_for_loopback() {
        let mut rng = StdRng::seed_from_u64(2);
        let guard = node(1, 0);
        let candidates: Vec<Snode> = (1..=4).map(|i| node(i, 0)).collect();
        let none = HashSet::new();
        assert!(choose_relays(&mut rng, &guard, &candidates, &none, &none, true).is_none());
        let [a, b] =
            choose_relays(&mut rng, &guard, &candidates, &none, &none, false).expect("relaxed");
        assert_ne!(a.ed25519, b.ed25519);
    }

    #[test]
    fn excluded_never_chosen_in_use_only_when_needed() {
        let mut rng = StdRng::seed_from_u64(3);
        let guard = node(1, 0);
        let candidates: Vec<Snode> = (1..=6).map(|i| node(i, 0)).collect();
        let exclude = keys(&[node(2, 0)]);
        let in_use = keys(&[node(3, 0), node(4, 0)]);
        for _ in 0..100 {
            let r = choose_relays(&mut rng, &guard, &candidates, &exclude, &in_use, false)
                .expect("enough");
            let got = keys(&r);
            assert_eq!(got, keys(&[node(5, 0), node(6, 0)]));
        }
        let in_use = keys(&[node(3, 0), node(4, 0), node(5, 0)]);
        for _ in 0..100 {
            let r = choose_relays(&mut rng, &guard, &candidates, &exclude, &in_use, false)
                .expect("enough");
            assert!(keys(&r).contains(&[6; 32]));
            assert!(!keys(&r).contains(&[2; 32]));
        }
        let exclude = keys(&[node(2, 0), node(3, 0), node(4, 0), node(5, 0)]);
        assert!(choose_relays(
            &mut rng,
            &guard,
            &candidates,
            &exclude,
            &HashSet::new(),
            false
        )
        .is_none());
    }

    #[test]
    fn pick_path_avoids_destination_and_prefers_untried() {
        let mut rng = StdRng::seed_from_u64(4);
        let p1 = Path::new(1, [node(1, 0), node(2, 0), node(3, 0)]);
        let p2 = Path::new(2, [node(4, 0), node(5, 0), node(6, 0)]);
        let paths = vec![p1, p2];
        for _ in 0..50 {
            assert_eq!(
                pick_path(&mut rng, &paths, Some(&[2; 32]), &HashSet::new()),
                Some(1)
            );
            assert_eq!(
                pick_path(&mut rng, &paths, None, &HashSet::from([2])),
                Some(0)
            );
            // Both tried: still a usable one rather than none.
            assert!(pick_path(&mut rng, &paths, None, &HashSet::from([1, 2])).is_some());
        }
        let only = vec![Path::new(1, [node(1, 0), node(2, 0), node(3, 0)])];
        assert_eq!(
            pick_path(&mut rng, &only, Some(&[3; 32]), &HashSet::new()),
            None
        );
    }
}
