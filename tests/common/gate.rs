//! Gates that hold the tool at a known point, so a test acts on an event instead of hoping to
//! catch a moment: a MariaDB session the test keeps open holds a table lock, the tool's
//! statement waits for it (a state that lasts as long as the lock), and the test acts, then
//! lets it go.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::sql;

/// How long a test waits for something that must happen. Only a hang reaches it: nothing
/// waits for it to pass.
pub const PATIENCE: Duration = Duration::from_secs(300);

/// One `mariadb` client session that stays open, so locks and transactions outlive a statement.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    marks: u32,
}

impl Session {
    pub fn open() -> Session {
        let mut child = Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "-N", "-B", "--unbuffered"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mariadb client");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Session {
            child,
            stdin,
            stdout,
            marks: 0,
        }
    }

    /// Runs `q` and returns its output once the server answered (a marker row follows it).
    pub fn run(&mut self, q: &str) -> String {
        self.marks += 1;
        let mark = format!("gate-mark-{}", self.marks);
        writeln!(self.stdin, "{q};\nSELECT '{mark}';").unwrap();
        self.stdin.flush().unwrap();
        let mut out = String::new();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "the mariadb session ended while running {q}");
            if line.trim_end() == mark {
                return out;
            }
            out.push_str(&line);
        }
    }

    /// The session's connection id (what `KILL` takes and PROCESSLIST shows).
    pub fn id(&mut self) -> String {
        self.run("SELECT CONNECTION_ID()").trim().to_string()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A table lock held by the test: `LOCK TABLES db.table WRITE` stops every reader and writer of
/// the table but lets metadata through (SHOW CREATE, information_schema); `READ` stops writers
/// only. Released by [`TableGate::open`] or on drop.
pub struct TableGate {
    session: Option<Session>,
}

impl TableGate {
    pub fn write(db: &str, table: &str) -> TableGate {
        Self::lock(db, table, "WRITE")
    }

    pub fn read(db: &str, table: &str) -> TableGate {
        Self::lock(db, table, "READ")
    }

    fn lock(db: &str, table: &str, how: &str) -> TableGate {
        let mut s = Session::open();
        s.run(&format!("LOCK TABLES `{db}`.`{table}` {how}"));
        TableGate { session: Some(s) }
    }

    /// Lets the waiting statements go.
    pub fn open(mut self) {
        if let Some(mut s) = self.session.take() {
            s.run("UNLOCK TABLES");
        }
    }
}

impl Drop for TableGate {
    fn drop(&mut self) {
        if let Some(mut s) = self.session.take() {
            s.run("UNLOCK TABLES");
        }
    }
}

/// Waits until a statement matching the LIKE `pattern` waits for a table lock (it stays in that
/// state while the test holds the gate, so this cannot miss it); returns its connection id.
pub fn wait_until_blocked(pattern: &str) -> String {
    blocked(pattern, "")
}

/// [`wait_until_blocked`] for a statement run in database `db` (its unqualified names).
pub fn wait_until_blocked_in(db: &str, pattern: &str) -> String {
    blocked(pattern, &format!(" AND DB = '{db}'"))
}

fn blocked(pattern: &str, and: &str) -> String {
    let q = format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '{pattern}' \
         AND STATE LIKE 'Waiting for table%lock' AND INFO NOT LIKE '%PROCESSLIST%'{and}"
    );
    wait_for(
        &format!("a statement like {pattern} waiting for the gate"),
        || {
            let id = sql(None, &q);
            let id = id.lines().next().unwrap_or("").trim().to_string();
            (!id.is_empty()).then_some(id)
        },
    )
}

/// Waits until `f` gives a value: for a state that, once reached, lasts (a commit, a file, a
/// journal entry, a waiting statement), never for a passing moment.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child's output read as it comes, so a test can wait for a line the tool prints at a known
/// point ("stopping cleanly …") instead of guessing when it got there.
pub struct Tail {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Tail {
    pub fn new(r: impl std::io::Read + Send + 'static) -> Tail {
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let t = text.clone();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                t.lock().unwrap().push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        Tail {
            text,
            reader: Some(reader),
        }
    }

    /// Waits until the output holds `needle` (the tool printed it; it stays printed).
    pub fn wait_for(&self, needle: &str) {
        wait_for(&format!("the output to say {needle:?}"), || {
            self.text.lock().unwrap().contains(needle).then_some(())
        });
    }

    /// Everything, once the child closed its end.
    pub fn finish(mut self) -> String {
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.text.lock().unwrap().clone()
    }
}

/// Sends `sig` (`-INT`, `-STOP`, `-CONT`, `-KILL`) to a child.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", child.id());
}

/// A loopback port where nothing answers, held by the test: the socket is bound (so no other
/// process can take the port) but never listens, so a connection is refused at once.
pub struct ClosedPort {
    _socket: socket2::Socket,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let port = s.local_addr().unwrap().as_socket().unwrap().port();
        ClosedPort { _socket: s, port }
    }
}

/// A server started on port 0 says which port it bound: waits for `marker` followed by
/// `http://127.0.0.1:PORT` in its log file and returns PORT. Nothing picks a port and binds it
/// later, so no other process can take it in between.
pub fn announced_port(child: &mut Child, log: &std::path::Path, marker: &str) -> u16 {
    let find = |text: &str| {
        text.lines().find_map(|l| {
            let rest = &l[l.find(marker)? + marker.len()..];
            let rest = &rest[rest.find("http://127.0.0.1:")? + "http://127.0.0.1:".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u16>().ok()
        })
    };
    wait_for(&format!("{} to say {marker:?}", log.display()), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = find(&text) {
            return Some(port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited ({status}) before listening:\n{text}");
        }
        None
    })
}
