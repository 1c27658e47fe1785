//! Seeded random generator of memcached text and meta commands, well-formed and broken,
//! over a small key space so that hits, CAS conflicts and appends happen often.
//!
//! Timing is kept out of the stream: TTLs are 0, large, negative, or absolute times far in
//! the past or future, never a few seconds whose expiry could race with the test.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::command::{CasBook, Cmd};

/// Literal CAS values far above any natural CAS counter (bogus tokens).
///
/// No meta `E` flag (explicit new CAS) is ever generated: memcached 1.6.18 rejects it as
/// an invalid flag, while Shoal accepts it as newer memcached does (a deliberate extension).
const EXPLICIT_CAS: [u64; 4] = [
    1_000_000_000_000_000,
    1_000_000_000_000_001,
    1_000_000_000_000_002,
    9_000_000_000_000_000_000,
];

/// Characters a "safe" value may start with: if a server treats the value as a command
/// line (after a rejected command), it can only ever be an unknown command.
const SAFE_FIRST: &[u8] = b"0123456789_#@%";
/// Characters the rest of a safe value is made of.
const SAFE_REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-.:";

/// The command generator.
pub struct Generator {
    rng: StdRng,
    keys: Vec<Vec<u8>>,
    now: i64,
    /// A key just read with its CAS: the next command is a CAS update of it.
    pending_cas: Option<Vec<u8>>,
    /// Keys that may hold a number an incr/decr shortened, since their last sure
    /// overwrite or delete: they get no append or prepend.
    ///
    /// memcached 1.6.18 shortens a number in place, padded with spaces, unless another
    /// of its threads (its LRU maintainer) holds a reference to the item at that moment;
    /// then it writes a new unpadded item. The normaliser equates a padded and an
    /// unpadded number, but not once data was appended: `incr` then reads `1  @x` (2) or
    /// `1@x` (non-numeric). A memcached-vs-memcached run differed exactly so (seed 31 at
    /// 6000 commands, `incr k5 1` at #3129, before this exclusion).
    padded: HashSet<Vec<u8>>,
}

impl Generator {
    /// A generator for `seed`; `now` (unix seconds) anchors absolute expiry times.
    pub fn new(seed: u64, now: i64) -> Self {
        let mut keys: Vec<Vec<u8>> = (0..47).map(|i| format!("k{i}").into_bytes()).collect();
        keys.push(vec![b'L'; 250]);
        keys.push(b"p:/~!{}[]|".to_vec());
        keys.push("\u{e9}t\u{e9}\u{2603}".as_bytes().to_vec());
        Generator {
            rng: StdRng::seed_from_u64(seed),
            keys,
            now,
            pending_cas: None,
            padded: HashSet::new(),
        }
    }

    /// The next command.
    pub fn next_cmd(&mut self, book: &CasBook) -> Cmd {
        if let Some(key) = self.pending_cas.take() {
            return self.cas_followup(book, key);
        }
        match self.rng.gen_range(0..1000) {
            0..=139 => self.storage(),
            140..=159 => self.cas_text(book),
            160..=179 => self.read_for_cas(),
            180..=299 => self.retrieval(),
            300..=359 => self.arith(),
            360..=389 => self.touch(),
            390..=429 => self.delete(),
            430..=431 => self.flush(),
            432..=449 => self.misc(),
            450 => line("quit"),
            451..=599 => self.mg(),
            600..=759 => self.ms(book),
            760..=829 => self.md(book),
            830..=929 => self.ma(book),
            930..=939 => self.me(),
            _ => self.bad_meta(),
        }
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.gen_range(0..100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.choose(&mut self.rng).expect("non-empty choice")
    }

    /// A key from the pool.
    fn pool_key(&mut self) -> Vec<u8> {
        self.keys.choose(&mut self.rng).expect("keys").clone()
    }

    /// A key for a text command: usually from the pool, sometimes one byte too long.
    fn key(&mut self) -> Vec<u8> {
        if self.chance(3) {
            vec![b'X'; 251]
        } else {
            self.pool_key()
        }
    }

    /// An expiry time: 0, large, negative, the 30-day boundary, or absolute past/future.
    fn exptime(&mut self) -> String {
        match self.rng.gen_range(0..100) {
            0..=49 => "0".into(),
            50..=64 => "3600".into(),
            65..=72 => "100000".into(),
            73..=76 => "-1".into(),
            77..=79 => "2592000".into(),
            80..=81 => "2592001".into(),
            82..=84 => "1000000000".into(),
            85..=93 => (self.now + 10_000_000).to_string(),
            94..=96 => "-100000".into(),
            _ => self
                .pick(&["abc", "", "1.5", "99999999999999999999"])
                .into(),
        }
    }

    fn client_flags(&mut self) -> String {
        match self.rng.gen_range(0..100) {
            0..=59 => "0".into(),
            60..=89 => self.rng.gen_range(1..70000u32).to_string(),
            90..=94 => "4294967295".into(),
            95..=96 => "4294967296".into(),
            97 => "-1".into(),
            _ => "x1".into(),
        }
    }

    fn noreply(&mut self) -> &'static str {
        if self.chance(15) {
            " noreply"
        } else {
            ""
        }
    }

    /// A value. Unsafe values may contain CR, LF and arbitrary bytes; safe ones cannot be
    /// mistaken for a real command when a server parses them as a command line.
    ///
    /// Numbers stay below 2^62 and never come from append/prepend (`numeric` false):
    /// memcached 1.6.18 parses a stored number >= 2^63 for incr/decr with a `strchr`
    /// for '-' that runs past the value into whatever memory follows, so its answer for
    /// such values is not deterministic and cannot be compared. For the same reason no
    /// value is all whitespace (see below).
    fn value(&mut self, safe: bool, numeric: bool) -> Vec<u8> {
        if numeric && self.chance(30) {
            let numbers = [
                "0",
                "1",
                "9",
                "99",
                "100",
                "12345",
                "4611686018427387903",
                "4611686018427387902",
                "18446744073709551616",
                "007",
                "123456789012345678901",
                "-5",
                "12abc",
            ];
            return numbers.choose(&mut self.rng).unwrap().as_bytes().to_vec();
        }
        let len = match self.rng.gen_range(0..1000) {
            0..=49 => 0,
            50..=899 => self.rng.gen_range(1..=24),
            900..=989 => self.rng.gen_range(25..=400),
            _ => self.rng.gen_range(401..=6000),
        };
        if len == 0 {
            return Vec::new();
        }
        if !safe && self.chance(20) {
            let mut v: Vec<u8> = (0..len).map(|_| self.rng.gen::<u8>()).collect();
            // A value of nothing but C whitespace is never stored either: memcached's
            // incr/decr (`strtoull`) skips it and its "\r\n" and parses whatever bytes
            // follow the item in slab memory (e.g. digits left by a freed item), which
            // no other server can reproduce.
            if !numeric || v.iter().all(|b| b" \t\n\x0b\x0c\r".contains(b)) {
                v[0] = b'#';
            }
            return v;
        }
        let first = if numeric {
            SAFE_FIRST
        } else {
            &SAFE_FIRST[10..]
        };
        let mut v = vec![*first.choose(&mut self.rng).unwrap()];
        v.extend((1..len).map(|_| *SAFE_REST.choose(&mut self.rng).unwrap()));
        v
    }

    /// A CAS token for `key`: that key's latest, a stale one, or a literal (often bogus).
    fn cas_token(&mut self, book: &CasBook, key: &[u8], cmd: &mut Cmd) {
        let roll = self.rng.gen_range(0..100);
        if roll < 55 {
            if let Some(&canon) = book.last.get(key) {
                cmd.cas(canon);
                return;
            }
        }
        if roll < 80 && book.count > 0 {
            let canon = self.rng.gen_range(0..book.count);
            cmd.cas(canon);
            return;
        }
        let literal = match self.rng.gen_range(0..10) {
            0..=3 => EXPLICIT_CAS.choose(&mut self.rng).unwrap().to_string(),
            4 => "0".into(),
            5 => "1".into(),
            6 => "18446744073709551615".into(),
            7 => "18446744073709551616".into(),
            8 => "-1".into(),
            _ => "abc".into(),
        };
        cmd.raw(literal);
    }

    fn storage(&mut self) -> Cmd {
        let verb = match self.rng.gen_range(0..10) {
            0..=3 => "set",
            4 => "add",
            5 => "replace",
            6..=7 => "append",
            _ => "prepend",
        };
        let key = self.key();
        // No append/prepend to a possibly padded number (see `padded`).
        let verb = if verb.ends_with("pend") && self.padded.contains(&key) {
            "set"
        } else {
            verb
        };
        let flags = self.client_flags();
        let exptime = self.exptime();
        let noreply = self.noreply();
        let numeric = !verb.ends_with("pend");
        let mut cmd = Cmd::for_key(&key);
        cmd.raw(format!("{verb} ")).raw(&key);
        let roll = self.rng.gen_range(0..1000);
        if roll < 3 {
            // Too large: the server must answer an error and swallow the whole value.
            let len = self.rng.gen_range(1_100_000..1_200_000);
            cmd.raw(format!(" {flags} {exptime} {len}{noreply}\r\n"))
                .raw(vec![b'z'; len])
                .raw("\r\n");
            return cmd;
        }
        if roll < 5 {
            let len = self.rng.gen_range(100_000..200_000);
            cmd.raw(format!(" {flags} {exptime} {len}{noreply}\r\n"))
                .raw(vec![b'y'; len])
                .raw("\r\n");
            return cmd;
        }
        let good_line = key.len() <= 250
            && !flags.starts_with('x')
            && flags != "-1"
            && flags != "4294967296"
            && exptime.parse::<i64>().is_ok();
        if roll < 35 {
            // Bad data chunk: one or two bytes more than announced.
            let data = self.value(true, numeric);
            let extra = self.rng.gen_range(1..=2);
            let mut sent = data.clone();
            sent.extend((0..extra).map(|_| b'Q'));
            cmd.raw(format!(" {flags} {exptime} {}{noreply}\r\n", data.len()))
                .raw(sent)
                .raw("\r\n");
            return cmd;
        }
        if roll < 45 {
            let bad = self.pick(&[" -1", " abc", "", " 3 extra token", " 2147483648"]);
            let data = self.value(true, numeric);
            cmd.raw(format!(" {flags} {exptime}{bad}{noreply}\r\n"))
                .raw(data)
                .raw("\r\n");
            return cmd;
        }
        let data = self.value(!good_line, numeric);
        if verb == "set" && good_line {
            self.padded.remove(&key);
        }
        cmd.raw(format!(" {flags} {exptime} {}{noreply}\r\n", data.len()))
            .raw(data)
            .raw("\r\n");
        cmd
    }

    fn cas_text(&mut self, book: &CasBook) -> Cmd {
        let key = self.key();
        let flags = self.client_flags();
        let exptime = self.exptime();
        let noreply = self.noreply();
        let data = self.value(true, true);
        let mut cmd = Cmd::for_key(&key);
        cmd.raw("cas ")
            .raw(&key)
            .raw(format!(" {flags} {exptime} {} ", data.len()));
        if self.chance(3) {
            // Missing token.
            cmd.pieces.pop();
            cmd.raw("cas ")
                .raw(&key)
                .raw(format!(" {flags} {exptime} {}", data.len()));
        } else {
            self.cas_token(book, &key, &mut cmd);
        }
        cmd.raw(format!("{noreply}\r\n")).raw(data).raw("\r\n");
        cmd
    }

    /// Reads a key's CAS (`gets` or `mg c`) and schedules a CAS update of it next, so
    /// that fresh tokens (and successful CAS updates) are common.
    fn read_for_cas(&mut self) -> Cmd {
        let key = self.pool_key();
        self.pending_cas = Some(key.clone());
        let mut cmd = Cmd::for_key(&key);
        if self.chance(50) {
            cmd.raw("gets ").raw(&key).raw("\r\n");
        } else {
            cmd.raw("mg ").raw(&key).raw(" c v\r\n");
        }
        cmd
    }

    /// A CAS update of `key` with its latest token (when one is known).
    fn cas_followup(&mut self, book: &CasBook, key: Vec<u8>) -> Cmd {
        let data = self.value(true, true);
        let mut cmd = Cmd::for_key(&key);
        let roll = self.rng.gen_range(0..100);
        if roll < 60 {
            let exptime = if self.chance(80) { "0" } else { "3600" };
            cmd.raw("cas ")
                .raw(&key)
                .raw(format!(" 0 {exptime} {} ", data.len()));
            self.fresh_token(book, &key, &mut cmd);
            let noreply = self.noreply();
            cmd.raw(format!("{noreply}\r\n")).raw(&data).raw("\r\n");
        } else if roll < 85 {
            cmd.raw("ms ").raw(&key).raw(format!(" {} C", data.len()));
            self.fresh_token(book, &key, &mut cmd);
            if self.chance(30) {
                cmd.raw(" c");
            }
            cmd.raw("\r\n").raw(&data).raw("\r\n");
        } else if roll < 95 {
            cmd.raw("md ").raw(&key).raw(" C");
            self.fresh_token(book, &key, &mut cmd);
            cmd.raw("\r\n");
        } else {
            self.padded.insert(key.clone());
            cmd.raw("ma ").raw(&key).raw(" v C");
            self.fresh_token(book, &key, &mut cmd);
            cmd.raw("\r\n");
        }
        cmd
    }

    /// The latest token seen for `key`, or any token when none was seen.
    fn fresh_token(&mut self, book: &CasBook, key: &[u8], cmd: &mut Cmd) {
        match book.last.get(key) {
            Some(&canon) => {
                cmd.cas(canon);
            }
            None => self.cas_token(book, key, cmd),
        }
    }

    fn retrieval(&mut self) -> Cmd {
        let verb = self.pick(&["get", "get", "gets", "gets", "gat", "gats"]);
        let mut cmd = Cmd::default();
        cmd.raw(verb);
        if verb.starts_with("ga") {
            let exptime = self.exptime();
            cmd.raw(format!(" {exptime}"));
        }
        // Lines over 2048 bytes that do not start with "get "/"gets " make memcached close
        // the connection depending on how the bytes arrive: only get/gets get 30 keys.
        let many = if verb.starts_with("ga") { 5 } else { 30 };
        let count = match self.rng.gen_range(0..100) {
            0..=3 => 0,
            4..=5 => many,
            6..=60 => 1,
            _ => self.rng.gen_range(2..=5),
        };
        for _ in 0..count {
            let key = self.key();
            cmd.raw(" ").raw(key);
        }
        cmd.raw("\r\n");
        cmd
    }

    fn arith(&mut self) -> Cmd {
        let verb = self.pick(&["incr", "decr"]);
        let key = self.key();
        self.padded.insert(key.clone());
        let delta = match self.rng.gen_range(0..100) {
            0..=39 => "1".to_string(),
            40..=79 => self.rng.gen_range(0..1000u32).to_string(),
            // Huge deltas only for decr (clamps at 0): incr must not create values >= 2^63.
            80..=84 if verb == "decr" => "18446744073709551615".into(),
            80..=84 => "4294967296".into(),
            85..=87 => "18446744073709551616".into(),
            88..=90 => "-1".into(),
            91..=93 => "abc".into(),
            94..=96 => String::new(),
            _ => "5 6".into(),
        };
        let noreply = self.noreply();
        let mut cmd = Cmd::for_key(&key);
        cmd.raw(format!("{verb} "))
            .raw(key)
            .raw(format!(" {delta}{noreply}\r\n"));
        cmd
    }

    fn touch(&mut self) -> Cmd {
        let key = self.key();
        let exptime = if self.chance(4) {
            String::new()
        } else {
            self.exptime()
        };
        let noreply = self.noreply();
        let mut cmd = Cmd::for_key(&key);
        cmd.raw("touch ")
            .raw(key)
            .raw(format!(" {exptime}{noreply}\r\n"));
        cmd
    }

    fn delete(&mut self) -> Cmd {
        let key = self.key();
        let tail = match self.rng.gen_range(0..100) {
            0..=79 => "",
            80..=89 => " noreply",
            90..=93 => " 0",
            94..=95 => " 0 noreply",
            96..=97 => " 5",
            _ => " noreply extra",
        };
        let mut cmd = Cmd::for_key(&key);
        if self.chance(2) {
            cmd.raw("delete\r\n");
        } else {
            if matches!(tail, "" | " noreply" | " 0" | " 0 noreply") {
                self.padded.remove(&key);
            }
            cmd.raw("delete ").raw(key).raw(format!("{tail}\r\n"));
        }
        cmd
    }

    fn flush(&mut self) -> Cmd {
        let text = self.pick(&[
            "flush_all",
            "flush_all 0",
            "flush_all noreply",
            "flush_all 0 noreply",
            "flush_all -1",
            "flush_all abc",
        ]);
        line(text)
    }

    fn misc(&mut self) -> Cmd {
        if self.chance(30) {
            // Random junk made of characters no command starts with.
            let len = self.rng.gen_range(1..60);
            let junk: String = (0..len)
                .map(|_| {
                    *b"ABCDEFGHIJKLNOPQRSTUVWXYZ0123456789 ="
                        .choose(&mut self.rng)
                        .unwrap() as char
                })
                .collect();
            return line(&junk);
        }
        let text = self.pick(&[
            "version",
            "verbosity 1",
            "verbosity 0 noreply",
            "verbosity",
            "",
            "   ",
            "foo bar",
            "GET k1",
            "gets",
            "set",
            "set k1",
            "incr k1",
            "touch k1",
            "cas k1 0 0",
            "get k1  k2",
            " get k1",
            "get k1\t",
        ]);
        line(text)
    }

    /// A meta key: plain from the pool, base64 (then `b` is added), or invalid.
    fn meta_key(&mut self) -> MetaKey {
        match self.rng.gen_range(0..100) {
            0..=89 => MetaKey::plain(self.pool_key()),
            90..=95 => {
                let raw = if self.chance(70) {
                    self.pool_key()
                } else {
                    let len = self.rng.gen_range(1..20);
                    (0..len).map(|_| self.rng.gen::<u8>()).collect()
                };
                MetaKey {
                    text: base64(&raw).into_bytes(),
                    decoded: raw,
                    b64: true,
                }
            }
            96..=97 => MetaKey::plain(vec![b'X'; 251]),
            _ => MetaKey {
                text: b"!!notb64".to_vec(),
                decoded: b"!!notb64".to_vec(),
                b64: true,
            },
        }
    }

    fn opaque(&mut self) -> String {
        let len = if self.chance(10) {
            self.rng.gen_range(33..=40)
        } else {
            self.rng.gen_range(1..=32)
        };
        let body: String = (0..len)
            .map(|_| *SAFE_REST.choose(&mut self.rng).unwrap() as char)
            .collect();
        format!("O{body}")
    }

    fn ttl_flag(&mut self, letter: char) -> String {
        let t = self.exptime();
        format!("{letter}{t}")
    }

    fn bad_flag(&mut self) -> String {
        self.pick(&["!", "Z", "9x", "vv", "&x", "Tabc", "Ffoo", "C", "Nx", "D-1"])
            .to_string()
    }

    /// Assembles `verb key [len] flags...` with optional base64 flag, flags shuffled.
    /// A `C<token>` flag is added when `cas` is given.
    fn meta_line(
        &mut self,
        verb: &str,
        key: &MetaKey,
        len: Option<String>,
        mut flags: Vec<String>,
        cas: Option<&CasBook>,
        allow_bad: bool,
    ) -> Cmd {
        if key.b64 {
            flags.push("b".into());
        }
        if allow_bad && self.chance(3) {
            let bad = self.bad_flag();
            flags.push(bad);
        }
        if self.chance(2) && !flags.is_empty() {
            let dup = flags[0].clone();
            flags.push(dup);
        }
        flags.shuffle(&mut self.rng);
        let mut cmd = Cmd::for_key(&key.decoded);
        cmd.raw(format!("{verb} ")).raw(&key.text);
        if let Some(len) = len {
            cmd.raw(format!(" {len}"));
        }
        for f in &flags {
            cmd.raw(format!(" {f}"));
        }
        if let Some(book) = cas {
            cmd.raw(" C");
            self.cas_token(book, &key.decoded, &mut cmd);
        }
        cmd
    }

    fn mg(&mut self) -> Cmd {
        let mk = self.meta_key();
        let mut flags = Vec::new();
        for (flag, p) in [
            ("v", 60),
            ("c", 30),
            ("f", 20),
            ("s", 15),
            ("t", 20),
            ("k", 15),
            ("h", 8),
            ("l", 8),
            ("q", 12),
            ("u", 5),
        ] {
            if self.chance(p) {
                flags.push(flag.to_string());
            }
        }
        if self.chance(15) {
            let o = self.opaque();
            flags.push(o);
        }
        for (letter, p) in [('N', 5), ('T', 8)] {
            if self.chance(p) {
                let f = self.ttl_flag(letter);
                flags.push(f);
            }
        }
        if self.chance(3) {
            flags.push(self.pick(&["R30", "R1000000"]).to_string());
        }
        let mut cmd = self.meta_line("mg", &mk, None, flags, None, true);
        cmd.raw("\r\n");
        cmd
    }

    fn ms(&mut self, book: &CasBook) -> Cmd {
        // A "clean" ms has a valid line, so its value may hold any bytes (CR, LF, ...);
        // otherwise the value is safe to be misread as a command line.
        let clean = self.chance(50);
        let mk = if clean {
            let k = self.pool_key();
            MetaKey::plain(k)
        } else {
            self.meta_key()
        };
        let mut flags = Vec::new();
        for (flag, p) in [("c", 20), ("I", 5), ("k", 10), ("q", 10), ("s", 3)] {
            if self.chance(p) {
                flags.push(flag.to_string());
            }
        }
        if self.chance(20) {
            let f = if clean {
                self.rng.gen_range(0..70000u32).to_string()
            } else {
                self.client_flags()
            };
            flags.push(format!("F{f}"));
        }
        if self.chance(10) {
            let o = self.opaque();
            flags.push(o);
        }
        if self.chance(25) {
            let f = self.ttl_flag('T');
            flags.push(f);
        }
        let mut numeric = true;
        if self.chance(20) {
            let mode = if clean {
                self.pick(&["E", "A", "P", "R", "S"])
            } else {
                self.pick(&["E", "A", "P", "R", "S", "a", "p", "X", "set"])
            };
            // No append/prepend to a possibly padded number (see `padded`).
            let mode = if ["A", "P"].contains(&mode) && self.padded.contains(&mk.decoded) {
                "S"
            } else {
                mode
            };
            numeric = !["A", "P", "a", "p"].contains(&mode);
            flags.push(format!("M{mode}"));
        }
        let cas = if self.chance(10) { Some(book) } else { None };
        let roll = if clean {
            1000
        } else {
            self.rng.gen_range(0..1000)
        };
        let (len_token, data): (Option<String>, Vec<u8>) = if roll < 2 {
            let len = self.rng.gen_range(1_100_000..1_200_000);
            (Some(len.to_string()), vec![b'z'; len])
        } else if roll < 30 {
            let d = self.value(true, numeric);
            let mut sent = d.clone();
            sent.extend((0..self.rng.gen_range(1..=2)).map(|_| b'Q'));
            (Some(d.len().to_string()), sent)
        } else if roll < 40 {
            let bad = self.pick(&["-1", "abc", "2147483647"]);
            (Some(bad.to_string()), self.value(true, numeric))
        } else if roll < 45 {
            (None, self.value(true, numeric))
        } else {
            let d = self.value(!clean, numeric);
            (Some(d.len().to_string()), d)
        };
        let mut cmd = self.meta_line("ms", &mk, len_token, flags, cas, !clean);
        cmd.raw("\r\n").raw(data).raw("\r\n");
        cmd
    }

    fn md(&mut self, book: &CasBook) -> Cmd {
        let mk = self.meta_key();
        let mut flags = Vec::new();
        for (flag, p) in [("I", 10), ("k", 10), ("q", 15), ("x", 10)] {
            if self.chance(p) {
                flags.push(flag.to_string());
            }
        }
        if self.chance(10) {
            let o = self.opaque();
            flags.push(o);
        }
        if self.chance(10) {
            let f = self.ttl_flag('T');
            flags.push(f);
        }
        let cas = if self.chance(15) { Some(book) } else { None };
        let mut cmd = self.meta_line("md", &mk, None, flags, cas, true);
        cmd.raw("\r\n");
        cmd
    }

    fn ma(&mut self, book: &CasBook) -> Cmd {
        let mk = self.meta_key();
        self.padded.insert(mk.decoded.clone());
        let mut flags = Vec::new();
        for (flag, p) in [("q", 10), ("t", 10), ("c", 20), ("v", 40), ("k", 10)] {
            if self.chance(p) {
                flags.push(flag.to_string());
            }
        }
        if self.chance(15) {
            let f = self.ttl_flag('N');
            flags.push(f);
        }
        if self.chance(10) {
            let j = self.pick(&[
                "0",
                "5",
                "4611686018427387903",
                "18446744073709551616",
                "abc",
            ]);
            flags.push(format!("J{j}"));
        }
        let mut decr = false;
        if self.chance(25) {
            let mode = self.pick(&["I", "+", "D", "-", "i", "d", "X"]);
            decr = ["D", "-", "d"].contains(&mode);
            flags.push(format!("M{mode}"));
        }
        if self.chance(40) {
            let d = match self.rng.gen_range(0..10) {
                0..=6 => self.rng.gen_range(0..100u32).to_string(),
                // Huge deltas only when decrementing: no stored value may reach 2^63.
                7 if decr => "18446744073709551615".into(),
                7 => "4294967296".into(),
                8 => "18446744073709551616".into(),
                _ => "x".into(),
            };
            flags.push(format!("D{d}"));
        }
        if self.chance(10) {
            let f = self.ttl_flag('T');
            flags.push(f);
        }
        if self.chance(10) {
            let o = self.opaque();
            flags.push(o);
        }
        let cas = if self.chance(5) { Some(book) } else { None };
        let mut cmd = self.meta_line("ma", &mk, None, flags, cas, true);
        cmd.raw("\r\n");
        cmd
    }

    fn me(&mut self) -> Cmd {
        let mk = self.meta_key();
        let mut cmd = Cmd::for_key(&mk.decoded);
        if self.chance(3) {
            cmd.raw("me\r\n");
        } else {
            cmd.raw("me ").raw(&mk.text);
            cmd.raw(if mk.b64 { " b\r\n" } else { "\r\n" });
        }
        cmd
    }

    fn bad_meta(&mut self) -> Cmd {
        if self.chance(20) {
            let mut flags: Vec<String> = Vec::new();
            for _ in 0..self.rng.gen_range(20..40) {
                flags.push(self.pick(&["v", "c", "t", "k", "s", "f", "O1"]).to_string());
            }
            return line(&format!("mg k1 {}", flags.join(" ")));
        }
        let text = self.pick(&[
            "mg",
            "ms",
            "md",
            "ma",
            "ms k1",
            "mx k1",
            "mg  k1 v",
            "mg k1 v ",
            "ms k1 notanumber",
            "mgk1",
            "MG k1 v",
        ]);
        line(text)
    }
}

/// A key as written in a meta command.
struct MetaKey {
    /// What goes on the command line.
    text: Vec<u8>,
    /// The key it stands for.
    decoded: Vec<u8>,
    /// Whether `text` is base64 (the command then carries the `b` flag).
    b64: bool,
}

impl MetaKey {
    fn plain(key: Vec<u8>) -> Self {
        MetaKey {
            text: key.clone(),
            decoded: key,
            b64: false,
        }
    }
}

/// A command that is just `text` followed by CRLF.
fn line(text: &str) -> Cmd {
    let mut cmd = Cmd::default();
    cmd.raw(text).raw("\r\n");
    cmd
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
