package capture

import "os"

// interruptSignal stops tcpdump so that it flushes what it captured.
var interruptSignal = os.Interrupt
