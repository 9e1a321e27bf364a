package layers

// planFD is the descriptor a planned open answers with.
const planFD = 3
