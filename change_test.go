package keyplane

import "testing"

func TestChangeRoundTrip(t *testing.T) {
	var h [32]byte
	for i := range h {
		h[i] = byte(i * 7)
	}
	for _, c := range []Change{KeyChanged(h), AccountChanged("acc_01abc")} {
		got, err := ParseChange(c.String())
		if err != nil || got != c {
			t.Fatalf("ParseChange(%q) = %+v, %v", c.String(), got, err)
		}
	}
	for _, bad := range []string{"", "key:", "key:zz", "key:" + KeyChanged(h).String()[4:10], "account:", "other:x"} {
		if _, err := ParseChange(bad); err == nil {
			t.Errorf("ParseChange(%q) accepted", bad)
		}
	}
}
