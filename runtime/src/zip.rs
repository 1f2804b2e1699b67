//! Slice-aligned reading of several inputs: slice k of every port together, as the slices
//! arrive, without one branch of a diamond ever waiting on another.

use crate::node::{check_slice, NodeCtx, NodeError};
use crate::stream::{Header, Message, Slice};
use std::collections::VecDeque;
use std::sync::Arc;

/// Several inputs read slice by slice together ([`NodeCtx::zip`]).
///
/// Each input must send its slices in increasing index order (every built-in node does); a
/// slice an input skips (a sparse stream) shows as `None` in [`Aligned::slices`]. The reader
/// keeps taking whatever any input offers, so an input that is ahead is queued here rather than
/// blocking its producer: a diamond whose one branch holds back the whole volume cannot
/// deadlock, at the cost of buffering the other branch meanwhile.
pub struct Zip {
    ports: Vec<String>,
    idx: Vec<usize>,
    /// Set for every input once [`NodeCtx::zip`] returns.
    headers: Vec<Option<Arc<Header>>>,
    queued: Vec<VecDeque<Arc<Slice>>>,
    /// Index of the last slice received per input.
    last: Vec<Option<usize>>,
    ended: Vec<bool>,
}

/// Slice `index` of every input of a [`Zip`], in the order the ports were given.
pub struct Aligned {
    pub index: usize,
    /// `None` where that input has no slice `index`.
    pub slices: Vec<Option<Arc<Slice>>>,
}

impl Zip {
    /// The stream header of input `n` (in the order the ports were given).
    pub fn header(&self, n: usize) -> &Arc<Header> {
        self.headers[n].as_ref().expect("zip has every header")
    }

    /// Whether input `n` can say if it has slice `k`: it queued a slice at or after `k`, it
    /// already passed `k`, or it ended.
    fn knows(&self, n: usize, k: usize) -> bool {
        !self.queued[n].is_empty() || self.ended[n] || self.last[n].is_some_and(|l| l >= k)
    }

    /// The next aligned index, if every input knows about it.
    fn ready(&self) -> Option<usize> {
        let k = self
            .queued
            .iter()
            .filter_map(|q| q.front())
            .map(|s| s.index)
            .min()?;
        (0..self.ports.len()).all(|n| self.knows(n, k)).then_some(k)
    }
}

impl NodeCtx {
    /// Starts reading `ports` slice by slice together: waits for their headers (in whatever
    /// order they come, queueing the slices of inputs that are ahead). Then
    /// [`NodeCtx::next_aligned`] yields slice k of every port; [`Zip::header`] has the headers. Use it for nodes that combine
    /// inputs slice-wise; use [`NodeCtx::gather_many`] when the node needs whole volumes. Never
    /// alternate [`NodeCtx::next_slice`] over several ports: if one branch of a diamond
    /// buffers, the bounded queues deadlock.
    pub fn zip(&mut self, ports: &[&str]) -> Result<Zip, NodeError> {
        let mut zip = self.unstarted_zip(ports);
        self.wait_headers(&mut zip)?;
        Ok(zip)
    }

    /// [`NodeCtx::zip`] for a node that reads input `n` whole first and whose other inputs
    /// may start only after it has ended: input `n` is read to its end before the other
    /// headers are waited for, each of its slices handed to `take` with its header as it
    /// comes (so it is never queued whole), while the other inputs' slices that arrive
    /// meanwhile stay queued. Then [`NodeCtx::next_aligned`] goes on with the other inputs.
    pub fn zip_draining(
        &mut self,
        ports: &[&str],
        n: usize,
        take: impl FnMut(&Header, &Slice) -> Result<(), NodeError>,
    ) -> Result<Zip, NodeError> {
        let mut zip = self.unstarted_zip(ports);
        self.drain(&mut zip, n, take)?;
        self.wait_headers(&mut zip)?;
        Ok(zip)
    }

    fn unstarted_zip(&self, ports: &[&str]) -> Zip {
        Zip {
            ports: ports.iter().map(|p| p.to_string()).collect(),
            idx: ports.iter().map(|p| self.in_index(p)).collect(),
            headers: vec![None; ports.len()],
            queued: vec![VecDeque::new(); ports.len()],
            last: vec![None; ports.len()],
            ended: vec![false; ports.len()],
        }
    }

    fn wait_headers(&mut self, zip: &mut Zip) -> Result<(), NodeError> {
        while zip.headers.iter().any(Option::is_none) {
            self.pull(zip)?;
        }
        Ok(())
    }

    /// The next slice index with what every input of `zip` has for it; `None` when all
    /// inputs have ended.
    pub fn next_aligned(&mut self, zip: &mut Zip) -> Result<Option<Aligned>, NodeError> {
        loop {
            if let Some(k) = zip.ready() {
                let slices = zip
                    .queued
                    .iter_mut()
                    .map(|q| {
                        q.front()
                            .is_some_and(|s| s.index == k)
                            .then(|| q.pop_front())
                            .flatten()
                    })
                    .collect();
                return Ok(Some(Aligned { index: k, slices }));
            }
            if zip.ended.iter().all(|&e| e) {
                return Ok(None);
            }
            self.pull(zip)?;
        }
    }

    /// Reads input `n` of `zip` to its end, handing each of its slices to `take` in order, while
    /// the other inputs' slices that arrive meanwhile stay queued (no producer waits). Then
    /// [`NodeCtx::next_aligned`] goes on with the other inputs (`None` for input `n`). For a
    /// node that needs one input whole before it can stream the others.
    pub fn drain_input(
        &mut self,
        zip: &mut Zip,
        n: usize,
        mut take: impl FnMut(&Slice) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        self.drain(zip, n, |_, s| take(s))
    }

    /// Hands input `n`'s slices to `take` with its header, queued ones first, until it ends.
    fn drain(
        &mut self,
        zip: &mut Zip,
        n: usize,
        mut take: impl FnMut(&Header, &Slice) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        loop {
            while let Some(s) = zip.queued[n].pop_front() {
                let h = zip.headers[n]
                    .as_ref()
                    .expect("a slice comes after its header");
                take(h, &s)?;
            }
            if zip.ended[n] {
                return Ok(());
            }
            self.pull(zip)?;
        }
    }

    /// Receives one message from whichever input of `zip` has one first (all inputs that have
    /// not ended take part, so no producer waits on this node) and files it.
    fn pull(&mut self, zip: &mut Zip) -> Result<(), NodeError> {
        let live: Vec<usize> = (0..zip.ports.len()).filter(|&n| !zip.ended[n]).collect();
        let live_inputs: Vec<usize> = live.iter().map(|&n| zip.idx[n]).collect();
        let n = live[self.wait_any(&live_inputs)?];
        let port = &zip.ports[n];
        match (self.recv_index(zip.idx[n])?, &zip.headers[n]) {
            (Message::Header(h), None) => zip.headers[n] = Some(h),
            (Message::Header(_), Some(_)) => {
                return Err(NodeError::msg(format!(
                    "input `{port}` sent a second header"
                )))
            }
            (Message::Slice(_), None) => {
                return Err(NodeError::msg(format!(
                    "input `{port}` sent a slice before its header"
                )))
            }
            (Message::Slice(s), Some(h)) => {
                check_slice(h, &s, port)?;
                if let Some(l) = zip.last[n].filter(|&l| s.index <= l) {
                    return Err(NodeError::msg(format!(
                        "input `{port}` sent slice {} after slice {l}; reading inputs slice by \
                         slice together needs each input's slices in increasing order",
                        s.index
                    )));
                }
                zip.last[n] = Some(s.index);
                zip.queued[n].push_back(s);
            }
            (Message::End, None) => {
                return Err(NodeError::msg(format!(
                    "input `{port}` ended before its header"
                )))
            }
            (Message::End, Some(_)) => zip.ended[n] = true,
        }
        Ok(())
    }
}
