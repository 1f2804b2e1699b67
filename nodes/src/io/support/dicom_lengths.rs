//! A cheap walk over a DICOM file's element headers, run before the DICOM parser: the parser
//! allocates whatever an element's length field claims, so a corrupt length of a few GB would
//! be allocated before the file is found short. The walk reads the file meta group (explicit VR
//! little endian) and then the dataset in the transfer syntax the meta names (implicit VR
//! little endian, explicit VR little or big endian), going into sequences and items, over the
//! pixel data (fragment by fragment when encapsulated) to the end. Deflated datasets and unknown
//! transfer syntaxes are not walked.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::Tag;
use dicom_dictionary_std::StandardDataDictionary;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
const GROUP_LENGTH: (u16, u16) = (0x0002, 0x0000);
const TRANSFER_SYNTAX: (u16, u16) = (0x0002, 0x0010);
/// The longest transfer syntax UID value read (a UID has 64 characters; the parser also reads
/// longer values padded with NULs or spaces, and trims them).
const MAX_UID_BYTES: u32 = 4096;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const ITEM: (u16, u16) = (0xFFFE, 0xE000);

/// Explicit VRs whose length is 2 bytes; every other VR (unknown ones included, which the
/// parser reads as UN) has 2 reserved bytes and a 4-byte length.
const SHORT_VRS: &[&[u8; 2]] = &[
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

#[derive(Clone, Copy)]
struct Syntax {
    explicit: bool,
    big_endian: bool,
}

const META: Syntax = Syntax {
    explicit: true,
    big_endian: false,
};

/// Bytes per value of the binary VRs: a defined length must be a multiple of it (PS3.5 6.2).
/// The parser reads `length / size` values and steps on by the rest, out of step with the file.
fn value_size(vr: &[u8; 2]) -> Option<u32> {
    match vr {
        b"OW" | b"SS" | b"US" => Some(2),
        b"AT" | b"FL" | b"OF" | b"OL" | b"SL" | b"UL" => Some(4),
        b"FD" | b"OD" | b"OV" | b"SV" | b"UV" => Some(8),
        _ => None,
    }
}

/// The VR the parser gives an implicit-VR element: the dictionary's (US for US-or-SS).
fn dictionary_vr(tag: (u16, u16)) -> Option<[u8; 2]> {
    match StandardDataDictionary.by_tag(Tag(tag.0, tag.1))?.vr() {
        VirtualVr::Exact(vr) => Some(vr.to_bytes()),
        VirtualVr::Xs => Some(*b"US"),
        _ => None,
    }
}

struct Header {
    tag: (u16, u16),
    vr: Option<[u8; 2]>,
    len: u32,
    /// Where the header starts.
    at: u64,
}

struct Walk {
    r: BufReader<File>,
    pos: u64,
    size: u64,
}

/// `Err` with the reason when an element of `path` claims more bytes than the file has left.
/// Files without the `DICM` marker are left to the parser, which refuses them.
pub fn check(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    let mut w = Walk {
        r: BufReader::new(file),
        pos: 0,
        size,
    };
    w.run().map_err(|e| format!("cannot be read: {e}"))?
}

impl Walk {
    /// The outer result is an I/O error, the inner one the verdict.
    fn run(&mut self) -> std::io::Result<Result<(), String>> {
        let mut head = [0u8; 132];
        let Some(n) = self.fill(&mut head)? else {
            return Ok(Ok(()));
        };
        let start = if n >= 132 && &head[128..132] == b"DICM" {
            132
        } else if &head[0..4] == b"DICM" {
            4
        } else {
            return Ok(Ok(()));
        };
        self.seek_to(start)?;
        let mut transfer_syntax = None;
        // Where the meta group ends, once its group length (0002,0000) is read: the parser reads
        // every element up to there, whatever its tag.
        let mut meta_end = None;
        loop {
            if meta_end.is_some_and(|end| self.pos >= end) {
                break;
            }
            let Some(h) = self.header(META)? else {
                return Ok(Ok(()));
            };
            if h.tag.0 != 0x0002 && meta_end.is_none() {
                self.seek_to(h.at)?;
                break;
            }
            if let Err(e) = self.fits(&h) {
                return Ok(Err(e));
            }
            if h.len == UNDEFINED {
                return Ok(Ok(()));
            }
            if (h.tag == TRANSFER_SYNTAX && h.len <= MAX_UID_BYTES)
                || (h.tag == GROUP_LENGTH && h.len == 4)
            {
                let mut value = vec![0u8; h.len as usize];
                self.r.read_exact(&mut value)?;
                self.pos += u64::from(h.len);
                if h.tag == GROUP_LENGTH {
                    let len = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
                    meta_end = Some(self.pos + u64::from(len));
                } else {
                    transfer_syntax = Some(String::from_utf8_lossy(&value).into_owned());
                }
            } else {
                self.skip(h.len)?;
            }
        }
        let Some(uid) = transfer_syntax else {
            return Ok(Ok(()));
        };
        // Trimmed as the parser trims it.
        let uid = uid.trim_end_matches(|c: char| c.is_whitespace() || c == '\0');
        let Some(ts) = TransferSyntaxRegistry.get(uid) else {
            return Ok(Ok(()));
        };
        if !(ts.is_codec_free() || ts.is_encapsulated_pixel_data()) {
            // A deflated dataset: its bytes are not element headers.
            return Ok(Ok(()));
        }
        self.dataset(Syntax {
            explicit: uid != IMPLICIT_VR_LE,
            big_endian: uid == EXPLICIT_VR_BE,
        })
    }

    fn dataset(&mut self, syn: Syntax) -> std::io::Result<Result<(), String>> {
        while let Some(h) = self.header(syn)? {
            if let Err(e) = self.fits(&h) {
                return Ok(Err(e));
            }
            let vr = h.vr.or_else(|| dictionary_vr(h.tag));
            if let Some((vr, size)) = vr.and_then(|vr| Some((vr, value_size(&vr)?))) {
                if h.len != UNDEFINED && h.len % size != 0 {
                    return Ok(Err(format!(
                        "damaged DICOM file (truncated or corrupt): element ({:04X},{:04X}) at byte {} has {} bytes, not a whole number of {} values ({size} bytes each)",
                        h.tag.0,
                        h.tag.1,
                        h.at,
                        h.len,
                        String::from_utf8_lossy(&vr)
                    )));
                }
            }
            if h.tag == PIXEL_DATA && h.len == UNDEFINED {
                // Encapsulated pixel data: fragments, not elements, up to the delimiter.
                match self.fragments(syn)? {
                    Ok(()) => continue,
                    Err(e) => return Ok(Err(e)),
                }
            }
            let sequence = h.tag == ITEM
                || h.vr == Some(*b"SQ")
                || (!syn.explicit && (h.len == UNDEFINED || self.next_is_item(syn)?));
            if sequence {
                // Walk into sequences and items: their elements follow.
                continue;
            }
            if h.len == UNDEFINED {
                // Undefined length outside a sequence (UN, encapsulated data): not walked.
                break;
            }
            self.skip(h.len)?;
        }
        Ok(Ok(()))
    }

    /// The items of encapsulated pixel data, checked and skipped up to the sequence delimiter.
    fn fragments(&mut self, syn: Syntax) -> std::io::Result<Result<(), String>> {
        while let Some(h) = self.header(syn)? {
            if let Err(e) = self.fits(&h) {
                return Ok(Err(e));
            }
            if h.tag != ITEM || h.len == UNDEFINED {
                // The delimiter, or something the parser will refuse.
                break;
            }
            self.skip(h.len)?;
        }
        Ok(Ok(()))
    }

    /// `Err` when `h` claims more bytes than the file has left after its header.
    fn fits(&self, h: &Header) -> Result<(), String> {
        let left = self.size - self.pos;
        if h.len != UNDEFINED && u64::from(h.len) > left {
            return Err(format!(
                "damaged DICOM file (truncated or corrupt): element ({:04X},{:04X}) at byte {} claims {} bytes, but the file has {left} bytes left",
                h.tag.0, h.tag.1, h.at, h.len
            ));
        }
        Ok(())
    }

    /// Whether the next 4 bytes are an item tag (an implicit VR sequence of defined length).
    fn next_is_item(&mut self, syn: Syntax) -> std::io::Result<bool> {
        let at = self.pos;
        let mut b = [0u8; 4];
        let is_item = self.fill(&mut b)? == Some(4)
            && (u16_of(syn, [b[0], b[1]]), u16_of(syn, [b[2], b[3]])) == ITEM;
        self.seek_to(at)?;
        Ok(is_item)
    }

    /// The next element header, or `None` at the end of the file (or within a header: the
    /// parser reports that).
    fn header(&mut self, syn: Syntax) -> std::io::Result<Option<Header>> {
        let at = self.pos;
        let mut t = [0u8; 4];
        if self.fill(&mut t)? != Some(4) {
            return Ok(None);
        }
        let tag = (u16_of(syn, [t[0], t[1]]), u16_of(syn, [t[2], t[3]]));
        let mut vr = None;
        let len = if tag.0 == 0xFFFE || !syn.explicit {
            self.u32(syn)?
        } else {
            let mut v = [0u8; 2];
            if self.fill(&mut v)? != Some(2) {
                return Ok(None);
            }
            vr = Some(v);
            if SHORT_VRS.contains(&&v) {
                let mut l = [0u8; 2];
                if self.fill(&mut l)? != Some(2) {
                    return Ok(None);
                }
                Some(u32::from(u16_of(syn, l)))
            } else {
                let mut reserved = [0u8; 2];
                if self.fill(&mut reserved)? != Some(2) {
                    return Ok(None);
                }
                self.u32(syn)?
            }
        };
        Ok(len.map(|len| Header { tag, vr, len, at }))
    }

    fn u32(&mut self, syn: Syntax) -> std::io::Result<Option<u32>> {
        let mut b = [0u8; 4];
        if self.fill(&mut b)? != Some(4) {
            return Ok(None);
        }
        Ok(Some(if syn.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }))
    }

    /// Reads up to `buf.len()` bytes; `None` when none were left.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        self.pos += n as u64;
        Ok((n > 0).then_some(n))
    }

    fn skip(&mut self, len: u32) -> std::io::Result<()> {
        self.r.seek_relative(i64::from(len))?;
        self.pos += u64::from(len);
        Ok(())
    }

    fn seek_to(&mut self, at: u64) -> std::io::Result<()> {
        self.r.seek_relative(at as i64 - self.pos as i64)?;
        self.pos = at;
        Ok(())
    }
}

fn u16_of(syn: Syntax, b: [u8; 2]) -> u16 {
    if syn.big_endian {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}
