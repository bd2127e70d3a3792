package stack

import "testing"

// The kernel may offer a port again before the child process given it has
// bound it: FreePort skips every port it already handed out.
func TestFreePortNeverRepeats(t *testing.T) {
	offers := []int{41001, 41001, 41002, 41001, 41002, 41003}
	orig := kernelPort
	t.Cleanup(func() { kernelPort = orig })
	kernelPort = func() (int, error) {
		p := offers[0]
		offers = offers[1:]
		return p, nil
	}
	var got []int
	for range 3 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if got[0] != 41001 || got[1] != 41002 || got[2] != 41003 {
		t.Fatalf("FreePort returned %v, want 41001 41002 41003 (each once)", got)
	}
}
