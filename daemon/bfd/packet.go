package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// State is a session state as carried in the Sta field (RFC 5880 section 4.1).
type State uint8

// Session states.
const (
	StateAdminDown State = 0
	StateDown      State = 1
	StateInit      State = 2
	StateUp        State = 3
)

func (s State) String() string {
	switch s {
	case StateAdminDown:
		return "AdminDown"
	case StateDown:
		return "Down"
	case StateInit:
		return "Init"
	case StateUp:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag is a diagnostic code (RFC 5880 section 4.1): why the session last left Up.
type Diag uint8

// Diagnostic codes used here.
const (
	DiagNone             Diag = 0
	DiagDetectExpired    Diag = 1
	DiagNeighborDown     Diag = 3
	DiagAdminDown        Diag = 7
	diagMax              Diag = 31
	packetLen                 = 24
	version                   = 1
	flagPoll                  = 0x20
	flagFinal                 = 0x10
	flagControlPlaneIndp      = 0x08
	flagAuth                  = 0x04
	flagDemand                = 0x02
	flagMultipoint            = 0x01
)

func (d Diag) String() string {
	switch d {
	case DiagNone:
		return "None"
	case DiagDetectExpired:
		return "ControlDetectionTimeExpired"
	case 2:
		return "EchoFunctionFailed"
	case DiagNeighborDown:
		return "NeighborSignaledSessionDown"
	case 4:
		return "ForwardingPlaneReset"
	case 5:
		return "PathDown"
	case 6:
		return "ConcatenatedPathDown"
	case DiagAdminDown:
		return "AdministrativelyDown"
	case 8:
		return "ReverseConcatenatedPathDown"
	}
	return fmt.Sprintf("Diag(%d)", uint8(d))
}

// Packet is a BFD Control packet without authentication. Intervals are in
// microseconds on the wire; the fields here are time.Durations.
type Packet struct {
	Diag  Diag
	State State
	Poll  bool
	Final bool
	// ControlPlaneIndependent is the C bit; bgplbd's BFD shares fate with its control
	// plane and always sends false.
	ControlPlaneIndependent bool
	Demand                  bool
	DetectMult              uint8
	MyDiscriminator         uint32
	YourDiscriminator       uint32
	DesiredMinTx            time.Duration
	RequiredMinRx           time.Duration
	RequiredMinEchoRx       time.Duration
}

// Errors of Unmarshal: the checks of RFC 5880 section 6.8.6 that make a receiver
// discard a packet.
var (
	ErrShort          = errors.New("bfd packet shorter than 24 bytes")
	ErrVersion        = errors.New("bfd packet version is not 1")
	ErrLength         = errors.New("bfd packet length field is wrong")
	ErrDetectMult     = errors.New("bfd packet detect multiplier is 0")
	ErrMultipoint     = errors.New("bfd packet multipoint bit is set")
	ErrMyDisc         = errors.New("bfd packet my discriminator is 0")
	ErrYourDisc       = errors.New("bfd packet your discriminator is 0 in state Init or Up")
	ErrAuthNotSupport = errors.New("bfd packet is authenticated; authentication is not supported")
)

// Marshal encodes p into the 24-byte wire format.
func (p Packet) Marshal() []byte {
	b := make([]byte, packetLen)
	b[0] = version<<5 | byte(p.Diag&diagMax)
	b[1] = byte(p.State) << 6
	if p.Poll {
		b[1] |= flagPoll
	}
	if p.Final {
		b[1] |= flagFinal
	}
	if p.ControlPlaneIndependent {
		b[1] |= flagControlPlaneIndp
	}
	if p.Demand {
		b[1] |= flagDemand
	}
	b[2] = p.DetectMult
	b[3] = packetLen
	binary.BigEndian.PutUint32(b[4:], p.MyDiscriminator)
	binary.BigEndian.PutUint32(b[8:], p.YourDiscriminator)
	binary.BigEndian.PutUint32(b[12:], micros(p.DesiredMinTx))
	binary.BigEndian.PutUint32(b[16:], micros(p.RequiredMinRx))
	binary.BigEndian.PutUint32(b[20:], micros(p.RequiredMinEchoRx))
	return b
}

// micros converts d to whole microseconds, saturating at the field's maximum.
func micros(d time.Duration) uint32 {
	us := d / time.Microsecond
	if us < 0 {
		return 0
	}
	if us > 0xFFFFFFFF {
		return 0xFFFFFFFF
	}
	return uint32(us)
}

// Unmarshal decodes a Control packet from one UDP payload and applies the reception
// checks of RFC 5880 section 6.8.6 that do not need session state. Bytes past the
// Length field are ignored (padding).
func Unmarshal(b []byte) (Packet, error) {
	if len(b) < packetLen {
		return Packet{}, ErrShort
	}
	if b[0]>>5 != version {
		return Packet{}, ErrVersion
	}
	flags := b[1]
	length := int(b[3])
	if flags&flagAuth != 0 {
		// With the A bit the minimum length is 26; we do not support it anyway.
		return Packet{}, ErrAuthNotSupport
	}
	if length < packetLen || length > len(b) {
		return Packet{}, ErrLength
	}
	p := Packet{
		Diag:                    Diag(b[0] & byte(diagMax)),
		State:                   State(flags >> 6),
		Poll:                    flags&flagPoll != 0,
		Final:                   flags&flagFinal != 0,
		ControlPlaneIndependent: flags&flagControlPlaneIndp != 0,
		Demand:                  flags&flagDemand != 0,
		DetectMult:              b[2],
		MyDiscriminator:         binary.BigEndian.Uint32(b[4:]),
		YourDiscriminator:       binary.BigEndian.Uint32(b[8:]),
		DesiredMinTx:            time.Duration(binary.BigEndian.Uint32(b[12:])) * time.Microsecond,
		RequiredMinRx:           time.Duration(binary.BigEndian.Uint32(b[16:])) * time.Microsecond,
		RequiredMinEchoRx:       time.Duration(binary.BigEndian.Uint32(b[20:])) * time.Microsecond,
	}
	switch {
	case p.DetectMult == 0:
		return Packet{}, ErrDetectMult
	case flags&flagMultipoint != 0:
		return Packet{}, ErrMultipoint
	case p.MyDiscriminator == 0:
		return Packet{}, ErrMyDisc
	case p.YourDiscriminator == 0 && p.State != StateDown && p.State != StateAdminDown:
		return Packet{}, ErrYourDisc
	}
	return p, nil
}
