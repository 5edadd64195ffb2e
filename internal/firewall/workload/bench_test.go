package workload

import "testing"

func TestUUID5MatchesPython(t *testing.T) {
	// python3 -c "import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, 'sg/common'))"
	for parts, want := range map[[2]string]string{
		{"sg", "common"}: "50ce78d4-7a61-5bed-83b1-158f3f7ec8bb",
		{"port", "7"}:    "8bbf54aa-e4f3-53bd-a799-75f5998fe834",
	} {
		if got := uuid5(parts[0], parts[1]); got != want {
			t.Errorf("uuid5(%v) = %s, want %s", parts, got, want)
		}
	}
}
