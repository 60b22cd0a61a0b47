//! Disclosure control of published figures (docs/marts.md), configured in one place ([`Rules`]).
//!
//! A *cell* is one published figure set (an item's scores for one period, area and service, say);
//! a [`Group`] is a parent cell with the cells that partition it (every response of the parent is
//! in exactly one child: a county and its municipalities, all services and each service, a year
//! and its quarters). The rules are those of NHS England's Friends and Family Test publication:
//!
//! - **primary**: a cell with 0 < n < k publishes no count, share or mean (zero is published);
//! - **secondary**: within a published parent, children are ranked by n (zeros are not ranked);
//!   if the smallest is suppressed the next smallest is too, so that parent − siblings does not
//!   reveal it. Because a cell belongs to several hierarchies here (geography, service, time),
//!   the rule is generalised: whenever exactly one child of a published parent is suppressed,
//!   the smallest published child is suppressed too, or the parent itself when that child is
//!   its only non-zero child (the parent would equal it);
//! - **cascade**: a suppressed parent suppresses its two smallest children.
//!
//! The rules are applied until nothing changes. Ties are broken by the cells' order, which the
//! caller makes a fixed order of their keys, so the result is deterministic.
//!
//! [`recover`] is the other side: the differencing attack the audit runs on published figures.

use std::collections::VecDeque;

/// The disclosure rules. The defaults are the one place they are set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// k: cells with 0 < n < k are suppressed
    pub min_n: u64,
    /// figures from fewer than this many answers carry a low-reliability flag
    pub reliable_n: u64,
    /// count "can't say" in the denominator of shares (the FFT convention); by default it is
    /// left out, as THL's reports do, and its count is published beside the share
    pub cant_say_in_denominator: bool,
}

pub const DEFAULT_MIN_N: u64 = 5;
pub const DEFAULT_RELIABLE_N: u64 = 30;

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            min_n: DEFAULT_MIN_N,
            reliable_n: DEFAULT_RELIABLE_N,
            cant_say_in_denominator: false,
        }
    }
}

impl Rules {
    /// Whether a count fails the primary rule.
    pub fn small(&self, n: u64) -> bool {
        n > 0 && n < self.min_n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Primary,
    Secondary,
    Cascade,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Primary => "primary",
            Reason::Secondary => "secondary",
            Reason::Cascade => "cascade",
        }
    }
}

/// A parent cell and the cells that partition it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub parent: usize,
    pub children: Vec<usize>,
}

/// Apply the rules. `n[i]` is the size of cell i (what children are ranked by), `primary[i]`
/// whether the cell fails the primary rule. Returns each cell's reason for suppression.
pub fn suppress(n: &[u64], primary: &[bool], groups: &[Group]) -> Vec<Option<Reason>> {
    let mut out: Vec<Option<Reason>> = primary
        .iter()
        .map(|&p| p.then_some(Reason::Primary))
        .collect();
    // children ranked by (n, order); zero cells are never ranked
    let ranked: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| {
            let mut c: Vec<usize> = g.children.iter().copied().filter(|&c| n[c] > 0).collect();
            c.sort_by_key(|&c| (n[c], c));
            c
        })
        .collect();
    let mut member_of: Vec<Vec<usize>> = vec![Vec::new(); n.len()];
    for (gi, g) in groups.iter().enumerate() {
        member_of[g.parent].push(gi);
        for &c in &g.children {
            member_of[c].push(gi);
        }
    }
    let mut queue: VecDeque<usize> = (0..groups.len()).collect();
    let mut queued = vec![true; groups.len()];
    while let Some(gi) = queue.pop_front() {
        queued[gi] = false;
        let children = &ranked[gi];
        let mut newly = Vec::new();
        if out[groups[gi].parent].is_some() {
            for &c in children.iter().take(2) {
                if out[c].is_none() {
                    out[c] = Some(Reason::Cascade);
                    newly.push(c);
                }
            }
        } else {
            let hidden = children.iter().filter(|&&c| out[c].is_some()).count();
            if hidden == 1 {
                // the smallest published child (rank 2 when rank 1 is the hidden one); when the
                // hidden child is the only non-zero one, the parent equals it and goes instead
                let target = children
                    .iter()
                    .copied()
                    .find(|&c| out[c].is_none())
                    .unwrap_or(groups[gi].parent);
                out[target] = Some(Reason::Secondary);
                newly.push(target);
            }
        }
        for c in newly {
            for &g in &member_of[c] {
                if !queued[g] {
                    queued[g] = true;
                    queue.push_back(g);
                }
            }
        }
    }
    out
}

/// `value[total] = Σ value[parts]`, over variables numbered by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equation {
    pub total: usize,
    pub parts: Vec<usize>,
}

/// The differencing attack: solve every equation that has exactly one unknown, again and again
/// until nothing more can be derived. `known[v]` is the published value of variable v (None when
/// it is not published). Returns the derived variables with their values, in the order found.
pub fn recover(known: &[Option<i64>], eqs: &[Equation]) -> Vec<(usize, i64)> {
    let mut val: Vec<Option<i64>> = known.to_vec();
    let mut member_of: Vec<Vec<usize>> = vec![Vec::new(); val.len()];
    for (ei, e) in eqs.iter().enumerate() {
        member_of[e.total].push(ei);
        for &p in &e.parts {
            member_of[p].push(ei);
        }
    }
    let mut derived = Vec::new();
    let mut queue: VecDeque<usize> = (0..eqs.len()).collect();
    let mut queued = vec![true; eqs.len()];
    while let Some(ei) = queue.pop_front() {
        queued[ei] = false;
        let e = &eqs[ei];
        let unknown: Vec<usize> = std::iter::once(e.total)
            .chain(e.parts.iter().copied())
            .filter(|&v| val[v].is_none())
            .collect();
        if unknown.len() != 1 {
            continue;
        }
        let u = unknown[0];
        let parts_known: i64 = e.parts.iter().filter_map(|&p| val[p]).sum();
        let x = if u == e.total {
            parts_known
        } else {
            val[e.total].expect("the total is known") - parts_known
        };
        val[u] = Some(x);
        derived.push((u, x));
        for &g in &member_of[u] {
            if !queued[g] {
                queued[g] = true;
                queue.push_back(g);
            }
        }
    }
    derived
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(parent: usize, children: &[usize]) -> Group {
        Group {
            parent,
            children: children.to_vec(),
        }
    }

    fn reasons(r: &[Option<Reason>]) -> Vec<&'static str> {
        r.iter().map(|x| x.map_or("-", Reason::as_str)).collect()
    }

    #[test]
    fn one_small_child_takes_the_next_smallest_with_it() {
        let rules = Rules::default();
        // parent 0 = 3 + 40 + 12 + 0
        let n = [55, 3, 40, 12, 0];
        let primary: Vec<bool> = n.iter().map(|&x| rules.small(x)).collect();
        let r = suppress(&n, &primary, &[g(0, &[1, 2, 3, 4])]);
        assert_eq!(reasons(&r), ["-", "primary", "-", "secondary", "-"]);
    }

    #[test]
    fn a_small_parent_cascades_to_its_two_smallest_children() {
        // parent suppressed for another reason (say secondary elsewhere): its two smallest go
        let n = [60, 30, 10, 20];
        let r = suppress(&n, &[true, false, false, false], &[g(0, &[1, 2, 3])]);
        assert_eq!(reasons(&r), ["primary", "-", "cascade", "cascade"]);
    }

    #[test]
    fn ties_are_broken_by_order_and_deterministically() {
        let n = [30, 2, 14, 14];
        let r = suppress(&n, &[false, true, false, false], &[g(0, &[1, 2, 3])]);
        assert_eq!(reasons(&r), ["-", "primary", "secondary", "-"]);
    }

    #[test]
    fn a_larger_child_hidden_by_another_hierarchy_is_protected() {
        // cell 3 (n 50) is suppressed in a second hierarchy (group 1, beside a primary cell);
        // in group 0 it is then the only hidden child while the smallest (1) is published, so
        // 0 − 1 − 2 would reveal it: 1 is suppressed too
        let n = [100, 20, 30, 50, 112, 2, 60];
        let groups = [g(0, &[1, 2, 3]), g(4, &[5, 3, 6])];
        let primary: Vec<bool> = n.iter().map(|&x| Rules::default().small(x)).collect();
        let r = suppress(&n, &primary, &groups);
        assert_eq!(
            reasons(&r),
            ["-", "secondary", "-", "secondary", "-", "primary", "-"]
        );
        // and nothing can be recovered by differencing
        let known: Vec<Option<i64>> = n
            .iter()
            .zip(&r)
            .map(|(&v, s)| s.is_none().then_some(v as i64))
            .collect();
        let eqs: Vec<Equation> = groups
            .iter()
            .map(|g| Equation {
                total: g.parent,
                parts: g.children.clone(),
            })
            .collect();
        assert!(recover(&known, &eqs).is_empty());
    }

    #[test]
    fn a_parent_equal_to_its_only_hidden_child_is_suppressed() {
        // 1 is hidden by another hierarchy (group 1) and is 0's only non-zero child
        let n = [12, 12, 0, 40, 28];
        let groups = [g(0, &[1, 2]), g(3, &[1, 4])];
        let r = suppress(&n, &[false, true, false, false, false], &groups);
        assert_eq!(reasons(&r), ["secondary", "primary", "-", "-", "secondary"]);
    }

    #[test]
    fn differencing_recovers_a_lone_suppressed_child_and_chains() {
        // 0 = 1 + 2, 2 = 3 + 4; 1 published, 0 published, 3 published → 2 then 4
        let known = [Some(10), Some(4), None, Some(5), None];
        let eqs = [
            Equation {
                total: 0,
                parts: vec![1, 2],
            },
            Equation {
                total: 2,
                parts: vec![3, 4],
            },
        ];
        assert_eq!(recover(&known, &eqs), vec![(2, 6), (4, 1)]);
    }
}
