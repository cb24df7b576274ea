package bfd

import (
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

func TestPacketRoundTrip(t *testing.T) {
	p := Packet{Diag: DiagNeighborDown, State: StateUp, Poll: true, DetectMult: 3, MyDiscriminator: 7,
		YourDiscriminator: 9, DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 250 * time.Millisecond,
		RequiredMinEchoRx: 0}
	b := p.Marshal()
	if len(b) != 24 {
		t.Fatalf("len %d, want 24", len(b))
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Fatalf("round trip: got %+v, want %+v", got, p)
	}
}

// frrUp is a Control packet as FRR bfdd sends it when Up with 300 ms intervals, written
// by hand from RFC 5880 section 4.1 (version 1, no diag, Up, multiplier 3).
const frrUp = "20c0031800000001a5b5c5d5000493e0000493e000000000"

func TestUnmarshalUpPacket(t *testing.T) {
	b := mustHex(t, frrUp)
	p, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{State: StateUp, DetectMult: 3, MyDiscriminator: 1, YourDiscriminator: 0xa5b5c5d5,
		DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond}
	if p != want {
		t.Fatalf("got %+v, want %+v", p, want)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	clean := make([]byte, 0, len(s))
	for i := range len(s) {
		if s[i] != ' ' {
			clean = append(clean, s[i])
		}
	}
	b, err := hex.DecodeString(string(clean))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnmarshalRejects(t *testing.T) {
	good := Packet{State: StateDown, DetectMult: 3, MyDiscriminator: 1, DesiredMinTx: time.Second,
		RequiredMinRx: time.Second}.Marshal()
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:23], ErrShort},
		{"version 0", mod(func(b []byte) []byte { b[0] &^= 0xE0; return b }), ErrVersion},
		{"version 2", mod(func(b []byte) []byte { b[0] = 2<<5 | b[0]&0x1F; return b }), ErrVersion},
		{"length below 24", mod(func(b []byte) []byte { b[3] = 23; return b }), ErrLength},
		{"length past payload", mod(func(b []byte) []byte { b[3] = 25; return b }), ErrLength},
		{"auth bit", mod(func(b []byte) []byte { b[1] |= flagAuth; b[3] = 26; return append(b, 0, 0) }), ErrAuthNotSupport},
		{"detect mult 0", mod(func(b []byte) []byte { b[2] = 0; return b }), ErrDetectMult},
		{"multipoint", mod(func(b []byte) []byte { b[1] |= flagMultipoint; return b }), ErrMultipoint},
		{"my disc 0", mod(func(b []byte) []byte { copy(b[4:8], []byte{0, 0, 0, 0}); return b }), ErrMyDisc},
		{"your disc 0 in Up", mod(func(b []byte) []byte { b[1] = byte(StateUp) << 6; return b }), ErrYourDisc},
		{"your disc 0 in Init", mod(func(b []byte) []byte { b[1] = byte(StateInit) << 6; return b }), ErrYourDisc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Unmarshal(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	// Padding past Length is allowed; AdminDown with your disc 0 is allowed.
	padded := append(append([]byte(nil), good...), 0, 0, 0, 0)
	if _, err := Unmarshal(padded); err != nil {
		t.Errorf("padded packet: %v", err)
	}
	ad := append([]byte(nil), good...)
	ad[1] = byte(StateAdminDown) << 6
	if _, err := Unmarshal(ad); err != nil {
		t.Errorf("AdminDown with your discriminator 0: %v", err)
	}
}

// FuzzUnmarshal checks that the decoder never panics and that whatever it accepts
// encodes back to the same first 24 bytes (apart from the bits it does not keep).
func FuzzUnmarshal(f *testing.F) {
	f.Add(mustHex(f, frrUp))
	f.Add(Packet{State: StateDown, DetectMult: 3, MyDiscriminator: 1, DesiredMinTx: time.Second}.Marshal())
	f.Add(Packet{State: StateInit, Poll: true, DetectMult: 1, MyDiscriminator: 1, YourDiscriminator: 2}.Marshal())
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Unmarshal(b)
		if err != nil {
			return
		}
		out := p.Marshal()
		in := append([]byte(nil), b[:24]...)
		in[3] = 24 // Length: we always send 24
		if string(out) != string(in) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
		}
	})
}
