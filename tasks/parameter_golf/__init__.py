"""parameter-golf: OpenAI's Parameter Golf from the 1.0810 record, prepared on the user's machine."""
