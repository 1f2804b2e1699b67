//! The voxel budget: how large a volume a reader may allocate, checked before it allocates.
//!
//! `VOXFLOW_MAX_VOXELS` (or `voxflow --max-voxels`, which sets it) is a hard limit on the voxels
//! of one volume. Without it, a volume's buffer may take at most half of the memory this process
//! can still get: the least of MemAvailable, the cgroup's limit less its usage (v2 `memory.max`,
//! v1 `memory.limit_in_bytes`, at every level up to the root) and RLIMIT_AS less the address
//! space already mapped. The other half is left for what the graph does with the volume.

use std::path::Path;

/// The variable that sets the voxel budget.
pub const MAX_VOXELS_VAR: &str = "VOXFLOW_MAX_VOXELS";

/// Checks that a volume of `nx * ny * nz * nt` voxels of `bytes_per_voxel` bytes each fits the
/// budget; returns the number of voxels. The error names `path` and says how to change the limit.
pub fn check_voxels(
    path: &Path,
    nx: u64,
    ny: u64,
    nz: u64,
    nt: u64,
    bytes_per_voxel: u64,
) -> Result<usize, String> {
    let dims = if nt > 1 {
        format!("{nx} x {ny} x {nz} x {nt}")
    } else {
        format!("{nx} x {ny} x {nz}")
    };
    let voxels = nx
        .checked_mul(ny)
        .and_then(|v| v.checked_mul(nz))
        .and_then(|v| v.checked_mul(nt))
        .filter(|&v| v.checked_mul(bytes_per_voxel.max(1)).is_some())
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| {
            format!(
                "{}: the header claims {dims} voxels, more than this machine can address",
                path.display()
            )
        })?;
    let bytes = voxels as u64 * bytes_per_voxel;
    let too_big = |limit: u64, why: String| {
        format!(
            "{}: the volume is {dims} = {} voxels ({} in memory), more than the limit of {} \
             voxels ({why}); set {MAX_VOXELS_VAR} or --max-voxels to change it",
            path.display(),
            voxels,
            human_bytes(bytes),
            limit
        )
    };
    match max_voxels_setting().map_err(|e| format!("{}: {e}", path.display()))? {
        Some(limit) if voxels as u64 > limit => {
            Err(too_big(limit, format!("{MAX_VOXELS_VAR}={limit}")))
        }
        Some(_) => Ok(voxels),
        None => {
            let (avail, source) = available_memory();
            let limit = avail / 2 / bytes_per_voxel.max(1);
            if voxels as u64 > limit {
                Err(too_big(
                    limit,
                    format!(
                        "half of the {} of memory available to this process, {source}",
                        human_bytes(avail)
                    ),
                ))
            } else {
                Ok(voxels)
            }
        }
    }
}

/// A zero-filled buffer of `n` values, or an error naming `path` when the allocation fails.
pub fn try_zeroed<T: Clone + Default>(path: &Path, n: usize) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        format!(
            "{}: cannot allocate {} for the volume: out of memory",
            path.display(),
            human_bytes((n as u64).saturating_mul(std::mem::size_of::<T>() as u64))
        )
    })?;
    v.resize(n, T::default());
    Ok(v)
}

/// The limit set by `VOXFLOW_MAX_VOXELS`, if any.
fn max_voxels_setting() -> Result<Option<u64>, String> {
    match std::env::var(MAX_VOXELS_VAR) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(s) => match s.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "{MAX_VOXELS_VAR}=`{s}` is not a positive whole number of voxels"
            )),
        },
        Err(e) => Err(format!("{MAX_VOXELS_VAR}: {e}")),
    }
}

/// Bytes this process can still allocate, and which limit says so.
pub fn available_memory() -> (u64, String) {
    let mut best = (u64::MAX, String::from("no memory limit found"));
    let mut consider = |bytes: Option<u64>, what: &str| {
        if let Some(b) = bytes {
            if b < best.0 {
                best = (b, what.to_string());
            }
        }
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    consider(
        kib_field(&meminfo, "MemAvailable:"),
        "MemAvailable in /proc/meminfo",
    );
    consider(cgroup_room(), "the cgroup memory limit");
    consider(address_space_room(), "RLIMIT_AS (ulimit -v)");
    best
}

/// A `Name:  123 kB` field of a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Limit less usage of this process's memory cgroup and its parents (v2 or v1).
fn cgroup_room() -> Option<u64> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut room: Option<u64> = None;
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, rel) = (parts.next()?, parts.next()?, parts.next()?);
        let (mount, limit_file, usage_file) = if id == "0" && controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max", "memory.current")
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                "/sys/fs/cgroup/memory",
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            )
        } else {
            continue;
        };
        // Inside a container the mount may show the group itself as its root.
        let mut dir = Path::new(mount).join(rel.trim_start_matches('/'));
        if !dir.exists() {
            dir = Path::new(mount).to_path_buf();
        }
        loop {
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
            if let Some(limit) = read(limit_file).and_then(|s| s.trim().parse::<u64>().ok()) {
                let used = read(usage_file)
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                let r = limit.saturating_sub(used);
                room = Some(room.map_or(r, |x| x.min(r)));
            }
            if dir == Path::new(mount) || !dir.pop() {
                break;
            }
        }
    }
    room
}

/// RLIMIT_AS less the address space this process already maps.
fn address_space_room() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mapped = kib_field(&status, "VmSize:").unwrap_or(0);
    Some(lim.rlim_cur.saturating_sub(mapped))
}

/// `1.5 GiB`, `12.0 MiB`, `800 B`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_dims_are_refused_by_name() {
        let e = check_voxels(Path::new("x.nii"), u64::MAX, 2, 1, 1, 4).unwrap_err();
        assert!(e.starts_with("x.nii: the header claims"), "{e}");
    }

    #[test]
    fn some_memory_is_found() {
        let (b, why) = available_memory();
        assert!(b > 0 && b < u64::MAX, "{b} {why}");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(800), "800 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
