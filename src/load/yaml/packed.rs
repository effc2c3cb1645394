//! A [`Node`] tree packed into one byte string, for the parse cache: a daemon keeps the tree of
//! every job file of its repo between loads, and as nodes (a `Vec` per mapping, a 120-byte entry
//! per key) the trees of 1,000 small job files took 3.1 MiB in 36,000 allocations, most of an
//! idle daemon's heap. Packed, a tree is about as long as its file, in one allocation; a load
//! unpacks it again in microseconds (much less than parsing the text).
//!
//! The format is private to the running process (nothing packed is ever stored): a node is a
//! header byte (the value's kind and which optional parts follow), its position, then its parts
//! and value, with every number as a LEB128 varint. The byte ranges of scalars in the text are
//! left out: only the parse reads them (to note what numbers looked like), and no text is kept.

use super::{Entry, Integer, Node, Pos, Text, Value};

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const STR: u8 = 5;
const SEQ: u8 = 6;
const MAP: u8 = 7;
const KIND: u8 = 0b0000_0111;
const QUOTED: u8 = 0b0000_1000;
const WRITTEN: u8 = 0b0001_0000;

impl Node {
    /// This tree in one byte string ([`Node::unpack`] gives it back, equal but for the byte
    /// ranges that only the parse reads).
    pub(crate) fn pack(&self) -> Box<[u8]> {
        let mut out = Vec::new();
        pack_node(self, &mut out);
        out.into_boxed_slice()
    }

    /// The tree [`Node::pack`] packed; `None` when `bytes` are not such a tree.
    pub(crate) fn unpack(bytes: &[u8]) -> Option<Node> {
        let mut reader = Reader { bytes, at: 0 };
        let node = reader.node()?;
        (reader.at == bytes.len()).then_some(node)
    }
}

fn pack_node(node: &Node, out: &mut Vec<u8>) {
    let kind = match &node.value {
        Value::Null => NULL,
        Value::Bool(false) => FALSE,
        Value::Bool(true) => TRUE,
        Value::Int(_) => INT,
        Value::Float(_) => FLOAT,
        Value::Str(_) => STR,
        Value::Seq(_) => SEQ,
        Value::Map(_) => MAP,
    };
    let mut header = kind;
    if node.quoted {
        header |= QUOTED;
    }
    if node.written.is_some() {
        header |= WRITTEN;
    }
    out.push(header);
    pack_pos(node.pos, out);
    if let Some(written) = &node.written {
        pack_str(written, out);
    }
    match &node.value {
        Value::Null | Value::Bool(_) => {}
        Value::Int(i) => out.extend_from_slice(&i.0),
        Value::Float(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Str(s) => pack_str(s, out),
        Value::Seq(items) => {
            pack_len(items.len(), out);
            items.iter().for_each(|item| pack_node(item, out));
        }
        Value::Map(entries) => {
            pack_len(entries.len(), out);
            for entry in entries {
                pack_str(&entry.key, out);
                pack_pos(entry.key_pos, out);
                pack_node(&entry.value, out);
            }
        }
    }
}

fn pack_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn pack_len(len: usize, out: &mut Vec<u8>) {
    pack_varint(len as u64, out);
}

fn pack_pos(pos: Pos, out: &mut Vec<u8>) {
    pack_varint(u64::from(pos.line), out);
    pack_varint(u64::from(pos.column), out);
}

fn pack_str(s: &str, out: &mut Vec<u8>) {
    pack_len(s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn node(&mut self) -> Option<Node> {
        let header = self.byte()?;
        let pos = self.pos()?;
        let written = if header & WRITTEN != 0 {
            Some(Box::from(self.str()?))
        } else {
            None
        };
        let value = match header & KIND {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => Value::Int(Integer(self.take::<16>()?.try_into().ok()?)),
            FLOAT => Value::Float(f64::from_le_bytes(self.take::<8>()?.try_into().ok()?)),
            STR => Value::Str(Text::from(self.str()?)),
            SEQ => Value::Seq(self.list(Self::node)?),
            _ => Value::Map(self.list(Self::entry)?),
        };
        Some(Node {
            value,
            pos,
            written,
            span: None,
            quoted: header & QUOTED != 0,
        })
    }

    fn entry(&mut self) -> Option<Entry> {
        let key = Text::from(self.str()?);
        let key_pos = self.pos()?;
        Some(Entry {
            key,
            key_pos,
            key_span: None,
            value: self.node()?,
        })
    }

    /// A count, then that many items read by `item`.
    fn list<T>(&mut self, item: fn(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let len = self.len()?;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(item(self)?);
        }
        Some(items)
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// The next `N` bytes.
    fn take<const N: usize>(&mut self) -> Option<&[u8]> {
        let bytes = self.bytes.get(self.at..self.at.checked_add(N)?)?;
        self.at += N;
        Some(bytes)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    fn len(&mut self) -> Option<usize> {
        let len = usize::try_from(self.varint()?).ok()?;
        // Every item takes at least one byte: a length past the end is not a packed tree.
        (len <= self.bytes.len() - self.at).then_some(len)
    }

    fn pos(&mut self) -> Option<Pos> {
        Some(Pos {
            line: self.u32()?,
            column: self.u32()?,
        })
    }

    fn str(&mut self) -> Option<&str> {
        let len = self.len()?;
        let bytes = self.bytes.get(self.at..self.at + len)?;
        self.at += len;
        std::str::from_utf8(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::{parse_tree, parse_tree_text};

    /// Every kind of node, both tree builders, quoted and written scalars, number keys:
    /// unpacked, the tree is the one packed, but for the byte ranges.
    #[test]
    fn a_packed_tree_unpacks_to_the_same_tree() {
        let texts = [
            "apiVersion: weir/v1\nkind: FlinkJob\nmetadata:\n  name: orders\n  labels:\n    tier: \"1\"\n\
             spec:\n  parallelism: 2\n  args: [--a, 'b', \"ç\"]\n  flinkConfiguration:\n    x: 0x1F\n    y: 1.50\n    z: yes\n    n: ~\n",
            "a: 170141183460469231731687303715884105727\nb: -170141183460469231731687303715884105728\n\
             1.0: float key\ntrue: bool key\n? [complex]\n: value\nanchored: &x {k: [1, 2]}\nalias: *x\n",
            &format!(
                "long: {}\nnested: [[[[]]], {{}}]\nempty: ''\n",
                "é".repeat(300)
            ),
        ];
        for text in texts {
            for mut tree in [parse_tree(text).unwrap(), parse_tree_text(text).unwrap()] {
                let packed = tree.pack();
                forget_ranges(&mut tree);
                assert_eq!(Node::unpack(&packed).as_ref(), Some(&tree), "{text}");
            }
        }
        // A job file packs into less than twice its text (as nodes, it took over ten times).
        let packed = parse_tree(texts[0]).unwrap().pack();
        assert!(packed.len() < texts[0].len() * 2, "{} bytes", packed.len());
    }

    fn forget_ranges(node: &mut Node) {
        node.span = None;
        match &mut node.value {
            Value::Seq(items) => items.iter_mut().for_each(forget_ranges),
            Value::Map(entries) => entries.iter_mut().for_each(|e| {
                e.key_span = None;
                forget_ranges(&mut e.value);
            }),
            _ => {}
        }
    }

    /// Bytes that are not a whole packed tree give no tree (the cache then parses the file).
    #[test]
    fn damaged_bytes_unpack_to_nothing() {
        let packed = parse_tree("a: [1, 2]\nb: {c: text}\n").unwrap().pack();
        for cut in 0..packed.len() {
            assert_eq!(Node::unpack(&packed[..cut]), None, "cut at {cut}");
        }
        let mut longer = packed.to_vec();
        longer.push(0);
        assert_eq!(Node::unpack(&longer), None);
        assert_eq!(
            Node::unpack(&[SEQ, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            None
        );
        assert_eq!(Node::unpack(&[STR, 1, 1, 2, 0xc3, 0x28]), None, "not UTF-8");
    }
}
