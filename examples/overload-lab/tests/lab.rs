//! The lab's claims, checked on its quick runs: the steadfast stack keeps goodput at 10x
//! overload, and a retry budget is what keeps a retry storm from eating the capacity.

use example_overload_lab::{CAPACITY_RPS, Lab, Length, Retries, Selection, Stack};

#[test]
fn steadfast_keeps_goodput_at_10x_and_a_retry_budget_contains_the_storm() {
    let selection = Selection {
        stacks: vec![Stack::Steadfast],
        step: false,
        storm: true,
    };
    let lab = Lab::run(Length::Quick, &selection, 2).expect("the scenarios run");
    println!("{}", lab.render());

    let at_10x = lab.measured(&lab.sweep_at(Stack::Steadfast, 10.0).expect("ran").report);
    assert!(
        at_10x.goodput_rps() >= 0.9 * CAPACITY_RPS,
        "goodput at 10x: {:.1}/s",
        at_10x.goodput_rps()
    );

    let storm = |retries| {
        let outcome = lab.storm_of(retries, true).expect("ran");
        lab.measured(&outcome.report).goodput_rps() / CAPACITY_RPS
    };
    let (budget, no_budget) = (storm(Retries::Budget), storm(Retries::NoBudget));
    assert!(budget >= 0.9, "with a budget: {:.1}%", 100.0 * budget);
    assert!(
        no_budget < 0.9,
        "without a budget: {:.1}%",
        100.0 * no_budget
    );

    // The printed PASS/FAIL marks come from the same numbers.
    for claim in ["goodput at 10x", "through TpsBudget", "without a budget"] {
        let target = lab
            .targets()
            .into_iter()
            .find(|t| t.claim.contains(claim))
            .unwrap_or_else(|| panic!("no target about {claim:?}"));
        assert!(target.pass, "{target:?}");
    }
}
