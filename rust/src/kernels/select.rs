//! Order statistics of an unsorted sample, without sorting it or copying it whole.
//!
//! Why: PSI's reference edges are numpy quantiles, i.e. a few order statistics of the
//! reference. Selecting them with `select_nth_unstable` on a copy costs a copy plus several
//! passes of data-dependent swaps (most of a one-shot PSI). Here values are counted into
//! value-range buckets instead (a monotone map, as in `ks`: bucket order is value order), the
//! bucket holding each wanted rank is read off the cumulative counts, and only those buckets'
//! values are gathered and selected exactly: three streaming passes and a few small selections,
//! the same values as a full sort would give.

/// `(min, max)` of `xs` folded into `init`, four lanes at a time (vectorised).
pub fn min_max(xs: &[f64], init: (f64, f64)) -> (f64, f64) {
    let mut lo = [init.0; 4];
    let mut hi = [init.1; 4];
    let chunks = xs.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..4 {
            lo[k] = lo[k].min(c[k]);
            hi[k] = hi[k].max(c[k]);
        }
    }
    for &v in rest {
        lo[0] = lo[0].min(v);
        hi[0] = hi[0].max(v);
    }
    (lo[0].min(lo[1]).min(lo[2].min(lo[3])), hi[0].max(hi[1]).max(hi[2].max(hi[3])))
}

/// The values of rank `ranks[i]` (0-based, ascending order by `total_cmp`) of `data`, selected
/// left to right on shrinking slices; `data` is reordered.
pub fn select_in_place(data: &mut [f64], ranks: &[usize]) -> Vec<f64> {
    let mut needed: Vec<usize> = ranks.to_vec();
    needed.sort_unstable();
    needed.dedup();
    let mut lo = 0usize;
    for &k in &needed {
        if k < lo {
            continue;
        }
        data[lo..].select_nth_unstable_by(k - lo, |a, b| a.total_cmp(b));
        lo = k + 1;
    }
    // after the left-to-right selections each needed index holds its order statistic
    ranks.iter().map(|&k| data[k]).collect()
}

/// Below this many values a copy and `select_in_place` is as fast.
const SMALL: usize = 4096;

/// The values of rank `ranks[i]` of `data` (NaN-free, every rank < len), as `select_in_place`
/// on a copy would give them.
pub fn order_stats(data: &[f64], ranks: &[usize]) -> Vec<f64> {
    let n = data.len();
    let (lo, hi) = min_max(data, (f64::INFINITY, f64::NEG_INFINITY));
    let width = hi - lo;
    if n < SMALL || !(width.is_finite() && width > 0.0) {
        return select_in_place(&mut data.to_vec(), ranks);
    }
    let nb = (n / 8).next_power_of_two().clamp(256, 1 << 20);
    let last = (nb - 1) as u32;
    let scale = nb as f64 / width;
    let bucket = |v: f64| (((v - lo) * scale) as u32).min(last) as usize;
    let mut counts = vec![0u32; nb];
    for &v in data {
        counts[bucket(v)] += 1;
    }
    // the bucket of each wanted rank, and the rank within it
    let mut order: Vec<usize> = (0..ranks.len()).collect();
    order.sort_unstable_by_key(|&i| ranks[i]);
    let mut slot = vec![0u8; nb]; // 0: not gathered; s: gathered into groups[s - 1]
    let mut groups: Vec<(usize, Vec<f64>)> = Vec::new(); // (first rank of the bucket, values)
    let mut local: Vec<(usize, usize)> = vec![(0, 0); ranks.len()]; // (group, rank within)
    let (mut b, mut before) = (0usize, 0usize);
    for &i in &order {
        let r = ranks[i];
        while before + counts[b] as usize <= r {
            before += counts[b] as usize;
            b += 1;
        }
        if slot[b] == 0 {
            if groups.len() == u8::MAX as usize {
                return select_in_place(&mut data.to_vec(), ranks); // more buckets than slots
            }
            groups.push((before, Vec::with_capacity(counts[b] as usize)));
            slot[b] = groups.len() as u8;
        }
        local[i] = (slot[b] as usize - 1, r - before);
    }
    for &v in data {
        let s = slot[bucket(v)];
        if s != 0 {
            groups[s as usize - 1].1.push(v);
        }
    }
    // exact selection inside each gathered bucket
    let mut per_group: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for &(g, k) in &local {
        per_group[g].push(k);
    }
    let picked: Vec<Vec<f64>> = groups
        .iter_mut()
        .zip(&per_group)
        .map(|((_, vals), ks)| select_in_place(vals, ks))
        .collect();
    let mut cursor = vec![0usize; groups.len()];
    local
        .iter()
        .map(|&(g, _)| {
            let v = picked[g][cursor[g]];
            cursor[g] += 1;
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    fn sorted(d: &[f64]) -> Vec<f64> {
        let mut v = d.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    }

    #[test]
    fn equals_a_full_sort() {
        let mut cases: Vec<Vec<f64>> = vec![
            xorshift(100_000, 1),
            xorshift(50_000, 2).iter().map(|u| (u * 40.0).exp()).collect(), // heavy right tail
            xorshift(20_000, 3).iter().map(|u| (u * 7.0).floor() - 3.0).collect(), // ties
            xorshift(9_000, 4).iter().map(|u| if *u < 0.5 { -0.0 } else { 0.0 }).collect(),
        ];
        let mut one_outlier = vec![1.0; 10_000];
        one_outlier[17] = 1e300;
        cases.push(one_outlier);
        cases.push(xorshift(300, 5));
        for d in &cases {
            let s = sorted(d);
            let n = d.len();
            let ranks = [n - 1, 0, n / 2, n / 10, n / 10 + 1, n / 2, 9 * n / 10, n / 2 + 1];
            let got = order_stats(d, &ranks);
            for (r, g) in ranks.iter().zip(&got) {
                assert_eq!(g.to_bits(), s[*r].to_bits(), "rank {r} of {n}");
            }
        }
    }
}
