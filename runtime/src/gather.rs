//! Whole volumes for nodes that need them: gathering inputs (diamond-safe) and emitting one.

use crate::node::{check_slice, NodeCtx, NodeError};
use crate::stream::{Message, Slice, Volume};
use std::sync::atomic::Ordering;

impl NodeCtx {
    /// Receives whole volumes from several inputs at once, reading them in parallel so that
    /// branches of a diamond never wait on each other. Missing slices stay zero.
    pub fn gather_many(&mut self, ports: &[&str]) -> Result<Vec<Volume>, NodeError> {
        let idx: Vec<usize> = ports.iter().map(|p| self.in_index(p)).collect();
        let mut vols: Vec<Option<Volume>> = vec![None; idx.len()];
        let mut done = vec![false; idx.len()];
        while done.iter().any(|d| !d) {
            self.check_cancel()?;
            let live: Vec<usize> = (0..idx.len()).filter(|&n| !done[n]).collect();
            let live_inputs: Vec<usize> = live.iter().map(|&n| idx[n]).collect();
            let n = live[self.wait_any(&live_inputs)?];
            let port = ports[n];
            match self.recv_index(idx[n])? {
                Message::Header(h) => {
                    if vols[n].is_some() {
                        return Err(NodeError::msg(format!(
                            "input `{port}` sent a second header"
                        )));
                    }
                    vols[n] = Some(Volume::zeros((*h).clone()));
                    // Progress counts the first input's slices.
                    if n == 0 {
                        self.stats
                            .slices_total
                            .fetch_add(h.num_slices(), Ordering::Relaxed);
                    }
                }
                Message::Slice(s) => {
                    let v = vols[n].as_mut().ok_or_else(|| {
                        NodeError::msg(format!("input `{port}` sent a slice before its header"))
                    })?;
                    check_slice(&v.header, &s, port)?;
                    v.put(&s);
                    if n == 0 {
                        self.tick();
                    }
                }
                Message::End => {
                    if vols[n].is_none() {
                        return Err(NodeError::msg(format!(
                            "input `{port}` ended before its header"
                        )));
                    }
                    done[n] = true;
                }
            }
        }
        Ok(vols.into_iter().map(|v| v.expect("all ended")).collect())
    }

    /// Receives a whole volume from one input.
    pub fn gather(&mut self, port: &str) -> Result<Volume, NodeError> {
        Ok(self.gather_many(&[port])?.pop().expect("one volume"))
    }

    /// Streams a whole volume: header, the present slices, end.
    pub fn emit_volume(&mut self, port: &str, v: &Volume) -> Result<(), NodeError> {
        self.send_header(port, v.header.clone())?;
        for k in 0..v.header.num_slices() {
            if let Some(meta) = &v.slice_meta[k] {
                let mut s = Slice::new(k, v.slice(k));
                s.meta = meta.clone();
                self.send_slice(port, s)?;
            }
        }
        self.end(port)
    }
}
