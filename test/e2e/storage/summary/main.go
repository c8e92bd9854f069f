// Command summary counts the Kubernetes storage test suite's results
// (e2e.test's JUnit report) per suite and test pattern: passed, failed,
// skipped, with each failure's message and each skip reason. Used by
// test/e2e/storage/guest.sh.
//
//	summary [-suites REGEXP] junit_01.xml...
//
// -suites keeps only the suites whose name matches (e2e.test's report also
// lists every test that -ginkgo.focus left out, as skipped).
package main

import (
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// testCase is one <testcase> of Ginkgo v2's JUnit report.
type testCase struct {
	Name    string `xml:"name,attr"`
	Status  string `xml:"status,attr"`
	Time    string `xml:"time,attr"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	Failure *struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	} `xml:"failure"`
	Error *struct {
		Message string `xml:"message,attr"`
	} `xml:"error"`
}

type report struct {
	Suites []struct {
		Cases []testCase `xml:"testcase"`
	} `xml:"testsuite"`
}

// key is what the counts are grouped by.
type key struct{ Suite, Pattern string }

// nameRE takes an external-driver test's name apart: "... [Testpattern:
// Dynamic PV (default fs)] provisioning should ...".
var nameRE = regexp.MustCompile(`\[Testpattern: ([^\]]*)\] (\S+) (.*)$`)

// classify returns the suite, the pattern and the test of an external-driver
// test's name; ok is false for other tests (the suite's setup nodes).
func classify(name string) (k key, test string, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return key{}, "", false
	}
	return key{Suite: m[2], Pattern: m[1]}, m[3], true
}

type counts struct {
	Passed, Failed, Skipped int
	Failures                []string
	SkipReasons             map[string]int
}

func summarize(r io.Reader, suites *regexp.Regexp, into map[key]*counts, other *int) error {
	var rep report
	if err := xml.NewDecoder(r).Decode(&rep); err != nil {
		return err
	}
	for _, s := range rep.Suites {
		for _, c := range s.Cases {
			k, test, ok := classify(c.Name)
			if !ok {
				if c.Status == "failed" || c.Failure != nil || c.Error != nil {
					*other++
				}
				continue
			}
			if !suites.MatchString(k.Suite) {
				continue
			}
			n := into[k]
			if n == nil {
				n = &counts{SkipReasons: map[string]int{}}
				into[k] = n
			}
			switch {
			case c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "panicked" || c.Status == "timedout":
				n.Failed++
				msg := ""
				if c.Failure != nil {
					msg = c.Failure.Message
				} else if c.Error != nil {
					msg = c.Error.Message
				}
				msg, _, _ = strings.Cut(strings.TrimSpace(msg), "\n")
				n.Failures = append(n.Failures, fmt.Sprintf("%s (%ss): %s", test, c.Time, msg))
			case c.Skipped != nil || c.Status == "skipped":
				n.Skipped++
				reason := ""
				if c.Skipped != nil {
					reason = c.Skipped.Message
				}
				reason, _, _ = strings.Cut(strings.TrimSpace(strings.TrimPrefix(reason, "skipped - ")), "\n")
				n.SkipReasons[reason]++
			default:
				n.Passed++
			}
		}
	}
	return nil
}

func main() {
	suitesFlag := flag.String("suites", "", "count only the suites whose name matches this regular expression")
	flag.Parse()
	suites, err := regexp.Compile("^(" + *suitesFlag + ")$")
	if *suitesFlag == "" {
		suites = regexp.MustCompile("")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "summary: -suites:", err)
		os.Exit(2)
	}
	all := map[key]*counts{}
	other := 0
	for _, p := range flag.Args() {
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "summary:", err)
			os.Exit(1)
		}
		err = summarize(f, suites, all, &other)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "summary: %s: %v\n", p, err)
			os.Exit(1)
		}
	}
	keys := make([]key, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Suite != keys[j].Suite {
			return keys[i].Suite < keys[j].Suite
		}
		return keys[i].Pattern < keys[j].Pattern
	})
	var tot counts
	fmt.Printf("%-14s %-50s %6s %6s %7s\n", "suite", "pattern", "passed", "failed", "skipped")
	for _, k := range keys {
		c := all[k]
		fmt.Printf("%-14s %-50s %6d %6d %7d\n", k.Suite, k.Pattern, c.Passed, c.Failed, c.Skipped)
		tot.Passed += c.Passed
		tot.Failed += c.Failed
		tot.Skipped += c.Skipped
	}
	fmt.Printf("%-14s %-50s %6d %6d %7d\n", "total", "", tot.Passed, tot.Failed, tot.Skipped)
	if other > 0 {
		fmt.Printf("failed outside the driver's tests (suite setup): %d\n", other)
	}
	for _, k := range keys {
		c := all[k]
		for _, f := range c.Failures {
			fmt.Printf("FAILED %s [%s] %s\n", k.Suite, k.Pattern, f)
		}
	}
	for _, k := range keys {
		c := all[k]
		reasons := make([]string, 0, len(c.SkipReasons))
		for r := range c.SkipReasons {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			fmt.Printf("skipped %s [%s] x%d: %s\n", k.Suite, k.Pattern, c.SkipReasons[r], r)
		}
	}
}
