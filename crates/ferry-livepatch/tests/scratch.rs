#[test]
fn scratch() {
    let dir = tempfile::tempdir().unwrap();
    let b = ferry_livepatch::demo::build_demo(dir.path()).unwrap();
    let opts = ferry_livepatch::BuildOptions { interruptible_calls: vec!["accept".into()], ..Default::default() };
    let p = ferry_livepatch::build_patch(&b.v1, &b.v2, &opts).unwrap();
    for f in &p.functions { println!("{:?} {:?} {:?} {:?}", f.name, f.kind, f.old, f.new); }
    for s in &p.statics { println!("{} {:?} {} {:?}", s.name, s.old, s.data_offset, s.copies); }
    println!("{:#?}", p.mapping);
    println!("{:?}", p.symbols);
    println!("relocs {} size {} base {:#x}", p.code.relocs.len(), p.code.size, p.code.base_vaddr);
}
