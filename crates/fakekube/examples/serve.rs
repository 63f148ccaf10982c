//! Runs a fake API server until Ctrl-C, for poking at it with kubectl:
//! `cargo run -p fakekube --example serve -- /tmp/fk [fixture.yaml ...]`, then
//! `kubectl --kubeconfig /tmp/fk/kubeconfig get ns`.

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/fakekube".into()));
    std::fs::create_dir_all(&dir).expect("create dir");
    let fk = fakekube::FakeKube::start();
    fakekube::controllers::pv_binder(&fk);
    fakekube::controllers::plugin_controller(&fk, std::time::Duration::from_secs(2));
    fakekube::controllers::chart_uninstall(&fk, std::time::Duration::from_secs(2));
    for f in args {
        fk.load_yaml(&std::fs::read_to_string(&f).expect("read fixture"));
    }
    let kc = fk.write_kubeconfig(&dir, fakekube::FakeKube::ADMIN_TOKEN);
    println!("{} kubeconfig={}", fk.url(), kc.display());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
