#[test]
fn scratch() {
    let r = ferry_livepatch::demo::run(&ferry_livepatch::demo::DemoOptions { cycles: 5, ..Default::default() });
    match r { Ok(r) => println!("{r}"), Err(e) => panic!("{e}") }
}
