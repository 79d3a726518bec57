package pgtest

import (
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	for _, tc := range []struct {
		test string
		seq  uint64
		want string
	}{
		{"TestFoo", 1, "t1_testfoo"},
		{"TestFoo/sub case#01", 12, "t12_testfoo_sub_case_01"},
		{"TestÜnicode/√", 3, "t3_test_nicode"},
		{strings.Repeat("TestLong", 20), 7, ("t7_" + strings.Repeat("testlong", 20))[:63]},
	} {
		if got := databaseName(tc.test, tc.seq); got != tc.want {
			t.Errorf("databaseName(%q, %d) = %q, want %q", tc.test, tc.seq, got, tc.want)
		}
	}
}
