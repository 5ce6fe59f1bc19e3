/* The built-in price table: data/prices.txt, as bytes (launcher/prices.c parses it). The path
 * is relative to the repository root, where make runs the assembler. */
	.section .rodata
	.global tbwrap_prices_data
	.global tbwrap_prices_data_end
	.hidden tbwrap_prices_data
	.hidden tbwrap_prices_data_end
tbwrap_prices_data:
	.incbin "data/prices.txt"
tbwrap_prices_data_end:
	.byte 0
	.section .note.GNU-stack,"",@progbits
