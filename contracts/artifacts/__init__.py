"""Compiled contract artifacts (ABI, bytecode, compiler settings), written by
``contracts/compile.mjs`` and committed; read with
:func:`fedledger.evm.artifact_loader.load_artifact`."""
