package iptables

import (
	"fmt"
	"slices"
	"testing"

	"github.com/moat-sg/moat/internal/firewall"
	"github.com/moat-sg/moat/internal/hybrid"
)

// fanOut is a plan creating leaves chains of one rule each and a hub chain
// jumping to each leaf hubJumps times over (Neutron's sg-chain: two jumps
// per port), plus a chain jumping to the hub.
func fanOut(leaves, hubJumps int) *tablePlan {
	p := &tablePlan{table: "filter"}
	hub := firewall.Chain{Name: "hub"}
	for i := range leaves {
		name := fmt.Sprintf("leaf%05d", i)
		p.create = append(p.create, firewall.Chain{Name: name, Rules: []string{"-j RETURN"}})
		for j := range hubJumps {
			hub.Rules = append(hub.Rules, fmt.Sprintf("-s 10.%d.%d.%d/32 -j %s", j, i/250, i%250, name))
		}
	}
	hub.Rules = append(hub.Rules, "-j DROP")
	p.create = append(p.create, hub, firewall.Chain{Name: "top", Rules: []string{"-j hub"}}, firewall.Chain{Name: "empty"})
	for _, c := range p.create {
		p.declare = append(p.declare, c.Name)
		p.rules += len(c.Rules)
	}
	p.created = len(p.create)
	return p
}

func TestStageLimits(t *testing.T) {
	for _, tc := range []struct {
		name             string
		leaves, hubJumps int
		lim              stageLimits
		wantSplit        bool // hub spread over several batches
	}{
		{"small: no stages", 10, 1, defaultStageLimits, false},
		{"sg-chain at 5,000 ports", 10000, 1, defaultStageLimits, true},
		{"two jumps per target", 3000, 2, defaultStageLimits, true},
		{"split by rules", 100, 30, stageLimits{chains: 50, rules: 700, targets: 1000}, true},
		{"split by targets", 100, 1, stageLimits{chains: 50, rules: 10000, targets: 7}, true},
		{"limits of one", 5, 2, stageLimits{chains: 1, rules: 1, targets: 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fanOut(tc.leaves, tc.hubJumps)
			orig := slices.Clone(p.create)
			origRules := p.rules
			batches := p.stage(tc.lim)
			if len(batches) == 0 {
				if tc.wantSplit {
					t.Fatal("no stages")
				}
				return
			}
			if len(p.create) != 0 || len(p.declare) != 0 || p.created != 0 || p.rules != 0 {
				t.Errorf("main plan keeps %d creates, %d declares, created %d, rules %d", len(p.create), len(p.declare), p.created, p.rules)
			}
			got := map[string][]string{}
			createdIn := map[string]int{}
			hubBatches := 0
			rules := 0
			for bi, b := range batches {
				if len(b.create) > tc.lim.chains {
					t.Errorf("batch %d creates %d chains", bi, len(b.create))
				}
				if b.rules > tc.lim.rules {
					t.Errorf("batch %d holds %d rules", bi, b.rules)
				}
				if !slices.Equal(b.declare, names(b.create)) {
					t.Errorf("batch %d declares %v, creates %v", bi, b.declare, names(b.create))
				}
				targets := map[string]bool{}
				for _, c := range b.create {
					if _, dup := createdIn[c.Name]; dup {
						t.Fatalf("%s created twice", c.Name)
					}
					createdIn[c.Name] = bi
				}
				n := 0
				for _, cs := range [][]firewall.Chain{b.create, b.extend} {
					for _, c := range cs {
						if c.Name == "hub" {
							hubBatches++
						}
						if in, ok := createdIn[c.Name]; !ok || in > bi {
							t.Fatalf("batch %d appends to %s before it is created", bi, c.Name)
						}
						got[c.Name] = append(got[c.Name], c.Rules...)
						n += len(c.Rules)
						for _, r := range c.Rules {
							tg := hybrid.RuleTarget(r)
							if in, ok := createdIn[tg]; ok && tg != c.Name {
								targets[tg] = true
								if in >= bi {
									t.Errorf("batch %d: %s jumps to %s, created in batch %d", bi, c.Name, tg, in)
								}
							}
						}
					}
				}
				if n != b.rules {
					t.Errorf("batch %d counts %d rules, holds %d", bi, b.rules, n)
				}
				rules += n
				if len(targets) > tc.lim.targets {
					t.Errorf("batch %d jumps to %d distinct new chains", bi, len(targets))
				}
			}
			if rules != origRules {
				t.Errorf("%d rules staged, want %d", rules, origRules)
			}
			for _, c := range orig {
				if !slices.Equal(got[c.Name], c.Rules) && !(len(c.Rules) == 0 && got[c.Name] == nil) {
					t.Errorf("%s: %d rules staged, want %d in order", c.Name, len(got[c.Name]), len(c.Rules))
				}
				if _, ok := createdIn[c.Name]; !ok {
					t.Errorf("%s not created", c.Name)
				}
			}
			if (hubBatches > 1) != tc.wantSplit {
				t.Errorf("hub in %d batches, want split %v", hubBatches, tc.wantSplit)
			}
		})
	}
}

func names(cs []firewall.Chain) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}
