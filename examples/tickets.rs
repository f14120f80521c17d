//! Ten processes buy train tickets from one shared count.
//!
//! With the lock (the default), every sale is a read-check-write under the segment's
//! mutex (`SharedValue::update`), so exactly the available tickets are sold. With
//! `--no-lock` the count is a `RawValue` read and written without the lock: two buyers
//! read the same count and both sell, and tickets are oversold, which is the race
//! Python's `multiprocessing.Value` also has when `+=`/`-=` is used without `get_lock()`.
//!
//! Run: `cargo run --release --example tickets` (or `-- --no-lock`)

#[path = "common/mod.rs"]
mod common;

use shmkit::typed::{RawValue, SharedValue};

const TICKETS: i64 = 2_000;
const BUYERS: usize = 10;

/// A little work between checking the count and writing it back (printing a ticket,
/// about 20 µs), during which another process can run.
fn print_ticket() {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_micros(20) {
        std::hint::spin_loop();
    }
    std::thread::yield_now();
}

fn buyer(name: &str, locked: bool) -> u64 {
    let mut sold = 0;
    if locked {
        let count = SharedValue::<i64>::open(name).expect("open the ticket count");
        while count
            .update(|left| {
                if *left > 0 {
                    print_ticket();
                    *left -= 1;
                    true
                } else {
                    false
                }
            })
            .expect("lock the ticket count")
        {
            sold += 1;
        }
    } else {
        let count = RawValue::<i64>::open(name).expect("open the ticket count");
        loop {
            let left = count.get();
            if left <= 0 {
                break;
            }
            print_ticket();
            count.set(left - 1);
            sold += 1;
        }
    }
    sold
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let sold = buyer(&args[1], args[2] == "lock");
        println!("{sold}");
        return;
    }
    let locked = !args.iter().any(|a| a == "--no-lock");
    let name = common::run_name("tickets");
    // Either object removes its segment when it drops at the end of main.
    let _count: Box<dyn std::any::Any> = if locked {
        Box::new(SharedValue::<i64>::create(&name, TICKETS).expect("create the count"))
    } else {
        Box::new(RawValue::<i64>::create(&name, TICKETS).expect("create the count"))
    };
    let mode = if locked { "lock" } else { "nolock" };
    let children: Vec<_> = (0..BUYERS)
        .map(|_| common::spawn_self(&["--child", &name, mode]))
        .collect();
    let mut total = 0u64;
    for (i, child) in children.into_iter().enumerate() {
        let sold: u64 = common::output_of(child).trim().parse().expect("a count");
        println!("buyer {i}: sold {sold}");
        total += sold;
    }
    let oversold = total as i64 - TICKETS;
    println!(
        "{BUYERS} buyers sold {total} of {TICKETS} tickets {}: {} oversold",
        if locked {
            "with the lock"
        } else {
            "without a lock"
        },
        oversold.max(0)
    );
    if locked {
        assert_eq!(total as i64, TICKETS, "the lock must prevent overselling");
        println!("OK: nothing oversold");
    } else if oversold > 0 {
        println!("RACE: {oversold} tickets sold twice; run without --no-lock to fix it");
    } else {
        println!("no race this time (it is timing-dependent); try again");
    }
}
